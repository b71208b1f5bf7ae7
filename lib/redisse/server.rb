# frozen_string_literal: true

require "redisse"
require "redisse/channel_workers"

module Redisse
  # Default of {#channel_workers}.
  DEFAULT_CHANNEL_WORKERS = 32
  # Default of {#channels_timeout}, in seconds.
  DEFAULT_CHANNELS_TIMEOUT = 10.0
  # How long a stopping server waits for `channels` calls still running.
  STOP_GRACE = 1.0

  # Where the innermost app of the middleware chain leaves the channels.
  CHANNELS_ENV_KEY = "redisse.channels"

  # @!group In-process mode

  # The most `channels` calls that run at once, each on a Ruby thread of
  # the server's (in-process mode). Threads are started as requests come,
  # so a slow call delays only its own request.
  #
  # @return [Integer] 32 by default
  def channel_workers
    @channel_workers ||= DEFAULT_CHANNEL_WORKERS
  end

  # @param count [Integer]
  attr_writer :channel_workers

  # How long a request may wait for its `channels` call (in-process mode),
  # from the moment the server queued it: it then gets a 503 from the
  # server, and the call, if one runs, is interrupted.
  #
  # @return [Float] seconds, 10.0 by default
  def channels_timeout
    @channels_timeout ||= DEFAULT_CHANNELS_TIMEOUT
  end

  # @param seconds [Numeric]
  attr_writer :channels_timeout

  # @!endgroup

  # Runs the Server-Sent Events server until it is stopped (SIGINT, SIGTERM).
  #
  # In redirect mode (the default) the channels come from the query string
  # that {#redirect_endpoint} built, or from its token when there is a
  # {#secret}. When {#nginx_internal_url} is nil, the server calls
  # {#channels} for each request, through the middlewares given to {#use}.
  #
  # @example A server script
  #   require "redisse/server"
  #   require_relative "config/redisse"
  #   exit Redisse.run
  #
  # @param argv [Array<String>] command line options, see `redisse --help`
  # @return [Integer] the exit status
  def run(argv = ARGV)
    command_line = Redisse::Native::CommandLine.parse(argv, redis_server.to_s, default_port.to_s)
    if command_line.help
      puts command_line.help
      return 0
    end

    in_process = nginx_internal_url.nil?
    secret = server_secret
    command_line.secret = secret if secret
    # A signal arriving while the server starts (it listens as soon as
    # `start` returns) is held until every thread is up and the handler
    # that stops the server cleanly is in place.
    Thread.handle_interrupt(SignalException => :never) do
      server = Redisse::Native::Server.start(command_line, in_process, Float(channels_timeout))
      workers = in_process ? start_channel_workers(server) : nil
      waiter = start_waiter(server)
      Thread.handle_interrupt(SignalException => :immediate) { join_until_stopped(server, waiter) }
      # Calls still running get a moment; their requests were answered 503.
      workers&.join(STOP_GRACE)
    end
    0
  rescue Redisse::CommandLineError => e
    warn e.message
    2
  rescue Redisse::ConfigurationError => e
    warn "redisse: #{e.message}"
    1
  end

  private

  # A secret set in Ruby (in a configuration that the application and the
  # server script both load) is the server's secret too, unless
  # --secret-file names one; nil when none was set, and the server reads
  # REDISSE_SECRET. Set, but to nil or to nothing (`ENV["TYPO"]`), it would
  # run the server without tokens: that stops it.
  def server_secret
    return unless instance_variable_defined?(:@secret)

    signing_secret || raise(ConfigurationError,
                            "#{redisse_name}.secret is set to #{@secret.inspect}: the server would take " \
                            "streams without tokens. Set it to the secret, or remove the setting " \
                            "(the server then reads REDISSE_SECRET).")
  end

  # The main thread waits in Ruby rather than inside the extension: Ruby
  # runs signal handlers (raising Interrupt, SignalException) on the main
  # thread only, and cannot wake it from a native call while other threads
  # are blocked in native calls too (the channel workers).
  def start_waiter(server)
    Thread.new do
      # `wait` returns false when interrupted, to be called again.
      until server.wait; end
    end
  end

  def join_until_stopped(server, waiter)
    waiter.join
  rescue SignalException # Interrupt included
    server.shutdown
    retry
  end

  def start_channel_workers(server)
    ChannelWorkers.new(server, channels_app, size: Integer(channel_workers),
                                             timeout: Float(channels_timeout)).start
  end

  # The middlewares given to {#use} around an app that calls {#channels}.
  def channels_app
    redisse = self
    innermost = lambda do |env|
      env[CHANNELS_ENV_KEY] = redisse.channels(env)
      [200, {}, []]
    end
    middlewares.reverse.inject(innermost) do |app, (middleware, args, block)|
      middleware.new(app, *args, &block)
    end
  end
end
