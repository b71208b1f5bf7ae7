# frozen_string_literal: true

require "redisse/version"
require "redisse/native"
require "redisse/server_sent_events"
require "redisse/test_event"
require "redisse/redirect_endpoint"
require "redisse/signed_streams"
require "redisse/turbo_streams"
require "redisse/browser"
# In a Rails application: the view helper, the routes, the JavaScript.
require "redisse/engine" if defined?(Rails::Engine)

# Server-Sent Events backed by Redis: publish events from the application,
# serve them with the `redisse` server.
#
# `Redisse` extends itself, so its methods are called on it directly, and any
# module can `extend Redisse` to get its own configuration and publisher:
#
# @example
#   Redisse.channels { |env| %w[global] }
#   Redisse.publish(:global, notice: "Hello")
#
#   Events = Module.new { extend Redisse }
#   Events.redis_server = "redis://localhost:6379/3"
module Redisse
  extend self

  # Default of {#connect_timeout}, in seconds.
  DEFAULT_CONNECT_TIMEOUT = 1.0
  # Default of {#command_timeout}, in seconds.
  DEFAULT_COMMAND_TIMEOUT = 5.0

  # Guards the lazily created state of every module extending Redisse.
  LOCK = Mutex.new
  private_constant :LOCK

  # @!group Configuration

  # The URL of the Redis server (`redis://`, `rediss://` or `unix://`); the
  # path selects the database, e.g. `redis://localhost:6379/3`.
  #
  # @return [String] defaults to `ENV['REDISSE_REDIS']`, else
  #   `redis://localhost:6379/`
  def redis_server
    @redis_server ||= ENV["REDISSE_REDIS"] || "redis://localhost:6379/"
  end

  # @param url [String]
  attr_writer :redis_server

  # The port the server listens on when none is given on its command line.
  #
  # @return [Integer, String] defaults to `ENV['REDISSE_PORT']`, else 8080
  def default_port
    @default_port ||= ENV["REDISSE_PORT"] || 8080
  end

  # @param port [Integer, String]
  attr_writer :default_port

  # The nginx internal location that {#redirect_endpoint} redirects to.
  # Setting it to `nil` makes the server call {#channels} itself
  # (in-process mode).
  #
  # @return [String, nil] defaults to `/redisse`
  def nginx_internal_url
    # An explicit nil is a setting of its own, so `||=` would not do.
    instance_variable_defined?(:@nginx_internal_url) ? @nginx_internal_url : "/redisse"
  end

  # @param url [String, nil]
  attr_writer :nginx_internal_url

  # How long {#publish} waits for a connection to Redis.
  #
  # @return [Float] seconds, 1.0 by default
  def connect_timeout
    @connect_timeout ||= DEFAULT_CONNECT_TIMEOUT
  end

  # @param seconds [Numeric]
  attr_writer :connect_timeout

  # How long {#publish} waits for Redis to answer.
  #
  # @return [Float] seconds, 5.0 by default
  def command_timeout
    @command_timeout ||= DEFAULT_COMMAND_TIMEOUT
  end

  # @param seconds [Numeric]
  attr_writer :command_timeout

  # @!endgroup

  # @!group Publishing

  # Publishes an event: gives it the next event id, sends it to the
  # channel's subscribers and keeps it in the channel's history (the newest
  # 100 events).
  #
  # @example
  #   Redisse.publish(:global, "Hello")               # type "message"
  #   Redisse.publish("user:1", notice: "Hello")      # type "notice"
  #   Redisse.publish("user:1", update: data.to_json)
  #
  # @param channel [String, Symbol]
  # @param message [String, Hash, #to_h, nil] a String is sent as an event of
  #   type `message`; a Hash (or anything answering `to_h`) gives its first
  #   pair as `{ type => data }`. The data is converted with `String()`.
  # @return [Integer] the event id
  # @raise [Redisse::ConnectionError] if Redis is unreachable or too slow
  # @raise [Redisse::InvalidEventError] if the type contains CR or LF
  def publish(channel, message)
    type, data = event_type_and_data(message)
    return publish_test_event(channel, data, type) if test_mode?

    wait_for_publish(publisher.publish(channel.to_s, type.to_s, String(data)))
  end

  # @!endgroup

  # @!group Channels

  # With a block, defines how to find the channels of a request. Without,
  # calls that block.
  #
  # @example
  #   Redisse.channels do |env|
  #     user = env["warden"].user
  #     ["global", "user:#{user.id}"]
  #   end
  #
  # @param env [Hash] the Rack environment (when calling)
  # @yieldparam env [Hash] the Rack environment of the event-stream request
  # @yieldreturn [Array<String>, String] the channels to subscribe to
  # @return [Proc, Array<String>] the block when defining, the channels when calling
  # @raise [NotImplementedError] when called before a block was given
  def channels(env = nil, &block)
    return @channels = block if block
    raise NotImplementedError, "#{redisse_name}.channels must be given a block first" unless @channels

    @channels.call(env)
  end

  # A Rack app that redirects event-stream requests to the Redisse server
  # through nginx (`X-Accel-Redirect` to {#nginx_internal_url}), with the
  # channels of the request in the query string, or in a token when a
  # {#secret} is set.
  #
  # @return [Redisse::RedirectEndpoint]
  def redirect_endpoint
    @redirect_endpoint ||= RedirectEndpoint.new(self)
  end

  # Adds a Rack middleware in front of {#channels} when the server runs in
  # in-process mode (see {#nginx_internal_url}).
  #
  # @example
  #   Redisse.use Warden::Manager do |manager|
  #     manager.default_strategies :cookie
  #   end
  #
  # @param middleware [Class] a Rack middleware, instantiated with
  #   `middleware.new(app, *args, &block)`
  # @return [Array] the middlewares
  def use(middleware, *args, &block)
    middlewares << [middleware, args, block]
  end
  # Keeps keyword arguments as keywords when they reach `middleware.new`.
  ruby2_keywords(:use)

  # @return [Array<Array(Class, Array, Proc)>] the middlewares given to {#use}
  def middlewares
    @middlewares ||= []
  end

  # @!endgroup

  # @!group Testing

  # Switches to test mode: from now on {#publish} records events in memory
  # (see {#published}) instead of sending them to Redis. Calling it again
  # forgets the recorded events.
  #
  # @return [void]
  def test_mode!
    LOCK.synchronize do
      @test_events = []
      @test_filter = nil
      @test_event_count = 0
    end
    nil
  end

  # Switches to test mode (forgetting recorded events) and records only the
  # events whose type matches `filter === type`.
  #
  # @example
  #   Redisse.test_filter = :notice
  #   Redisse.test_filter = ->(type) { type != :ping }
  #
  # @param filter [#===, nil] a Symbol, a String, a Proc, a Regexp...
  def test_filter=(filter)
    test_mode!
    @test_filter = filter
  end

  # @return [Array<Redisse::TestEvent>] the events recorded in test mode
  # @raise [Redisse::Error] when not in test mode
  def published
    raise Redisse::Error, "Call #{redisse_name}.test_mode! first" unless test_mode?

    @test_events
  end

  # @!endgroup

  private

  def redisse_name
    name || inspect
  end

  # @return [Array(Object, Object)] the type (`:message` by default) and the data
  def event_type_and_data(message)
    return [:message, message] if message.is_a?(String) || !message.respond_to?(:to_h)

    # `nil.to_h` is `{}`: like the old gem, that publishes an empty message.
    type, data = message.to_h.first
    [type || :message, data]
  end

  def test_mode?
    !@test_events.nil?
  end

  # Waits for a publish with the GVL released. An interrupt (Timeout,
  # Thread#kill, Thread#raise, a signal) makes `wait` return nil: Ruby then
  # takes it here, in Ruby code, and a handler that returns lets the wait
  # go on. Given up, the publish's connection is dropped.
  def wait_for_publish(pending)
    loop do
      id = pending.wait
      return id if id

      Thread.pass
    end
  ensure
    pending.cancel
  end

  # Test mode never touches Redis; the returned ids just count the calls.
  def publish_test_event(channel, data, type)
    # Refuse what the publisher would refuse, so that tests catch it.
    Redisse::Native.server_sent_event("", type.to_s, nil, nil)
    LOCK.synchronize do
      @test_events << TestEvent.new(channel, data, type) if @test_filter.nil? || @test_filter === type
      @test_event_count += 1
    end
  end

  # The publisher for the current settings, created on first use and again
  # whenever the Redis URL or a timeout changes.
  def publisher
    settings = [redis_server.to_s, Float(connect_timeout), Float(command_timeout)]
    LOCK.synchronize do
      if @publisher.nil? || @publisher_settings != settings
        @publisher = Redisse::Native::Publisher.new(*settings)
        @publisher_settings = settings
      end
      @publisher
    end
  end
end
