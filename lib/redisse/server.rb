# frozen_string_literal: true

require "redisse"
require "stringio"

module Redisse
  # Ruby threads that answer the server's channel requests in in-process
  # mode. The server keeps streaming events while they run, so a slow
  # `channels` block delays only the request it is working on.
  CHANNEL_WORKERS = 8

  # Where the innermost app of the middleware chain leaves the channels.
  CHANNELS_ENV_KEY = "redisse.channels"

  # Runs the Server-Sent Events server until it is stopped (SIGINT, SIGTERM).
  #
  # In redirect mode (the default) the channels come from the query string
  # that {#redirect_endpoint} built. When {#nginx_internal_url} is nil, the
  # server calls {#channels} for each request, through the middlewares
  # given to {#use}.
  #
  # @example A server script
  #   require "redisse/server"
  #   require_relative "config/redisse"
  #   exit Redisse.run
  #
  # @param argv [Array<String>] command line options, see `redisse --help`
  # @return [Integer] the exit status
  def run(argv = ARGV)
    options = Redisse::Native.parse_command_line(argv, redis_server.to_s, default_port.to_s)
    if options.is_a?(String) # --help
      puts options
      return 0
    end

    in_process = nginx_internal_url.nil?
    # A signal arriving while the server starts (it listens as soon as
    # `start` returns) is held until every thread is up and the handler
    # that stops the server cleanly is in place.
    Thread.handle_interrupt(SignalException => :never) do
      server = Redisse::Native::Server.start(options, in_process)
      threads = [start_waiter(server), *(in_process ? start_channel_workers(server) : [])]
      Thread.handle_interrupt(SignalException => :immediate) { join_until_stopped(server, threads) }
    end
    0
  rescue Redisse::CommandLineError => e
    warn e.message
    2
  end

  private

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

  def join_until_stopped(server, threads)
    threads.each(&:join)
  rescue SignalException # Interrupt included
    server.shutdown
    retry
  end

  def start_channel_workers(server)
    app = channels_app
    Array.new(CHANNEL_WORKERS) do
      Thread.new do
        loop do
          request = server.next_channel_request
          break if request == false # the server stopped
          next if request.nil? # interrupted, ask again

          answer_channel_request(app, request)
        end
      end
    end
  end

  def answer_channel_request(app, request)
    env = channel_request_env(*request.env_parts)
    _status, _headers, body = app.call(env)
    body.close if body.respond_to?(:close)
    # A middleware that answers by itself (e.g. refusing access) never
    # reaches `channels`, and the request gets no channels.
    request.reply(Array(env[CHANNELS_ENV_KEY]).map(&:to_s))
  rescue StandardError, ScriptError => e # NotImplementedError is a ScriptError
    # Whatever goes wrong, the client gets an answer and the worker lives on.
    warn "Redisse: channels failed: #{e.class}: #{e.message}",
         *Array(e.backtrace).first(5).map { |line| "  #{line}" }
    request.fail("#{e.class}: #{e.message}")
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

  def channel_request_env(method, path, query_string, headers, remote_addr, server_name, server_port)
    env = {
      "REQUEST_METHOD" => method.to_s,
      "SCRIPT_NAME" => "",
      "PATH_INFO" => path.to_s,
      "QUERY_STRING" => query_string.to_s,
      "SERVER_NAME" => server_name.to_s,
      "SERVER_PORT" => server_port.to_s,
      "SERVER_PROTOCOL" => "HTTP/1.1",
      "REMOTE_ADDR" => remote_addr.to_s,
      "rack.version" => Rack::VERSION,
      "rack.url_scheme" => "http",
      "rack.input" => StringIO.new("".b),
      "rack.errors" => $stderr,
      "rack.multithread" => true,
      "rack.multiprocess" => false,
      "rack.run_once" => false,
      "rack.hijack?" => false
    }
    headers.each do |name, value|
      key = name.to_s.upcase.tr("-", "_")
      key = "HTTP_#{key}" unless %w[CONTENT_TYPE CONTENT_LENGTH].include?(key)
      # Repeated headers are folded into one value, as HTTP allows.
      env[key] = env.key?(key) ? "#{env[key]}, #{value}" : value.to_s
    end
    env
  end
end
