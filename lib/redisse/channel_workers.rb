# frozen_string_literal: true

require "rack"
require "stringio"
require "timeout"

module Redisse
  # The Ruby threads that answer the server's channel requests in
  # in-process mode: each request's env goes through the middlewares to
  # {Redisse#channels}, and the channels go back to the server.
  #
  # The pool grows with the load: while a request is being answered,
  # another thread always waits for the next one, up to `size` threads at
  # once, so that a slow `channels` block delays only its own request.
  # The server gives each request its deadline when it queues it, and
  # answers 503 when it passes (it alone enforces it); a call still running
  # then is interrupted, as nobody waits for its answer. Requests whose
  # client left, or whose deadline passed, never reach the block. Whatever
  # a block raises, its request gets an answer and the thread lives on; a
  # thread that dies anyway is replaced.
  class ChannelWorkers
    # Threads kept waiting when the load drops.
    SPARE = 2

    # @param server [Redisse::Native::Server]
    # @param app [#call] the middlewares around the call of `channels`
    # @param size [Integer] the most threads at once
    # @param timeout [Numeric] the server's deadline, for messages
    def initialize(server, app, size:, timeout:)
      @server = server
      @app = app
      @size = size
      @timeout = timeout
      @lock = Mutex.new
      @threads = []
      @waiting = 0
      @stopped = false
    end

    def start
      @lock.synchronize { spawn }
      self
    end

    # Waits up to `timeout` seconds for the threads to end, once the server
    # stopped; calls still running are left to the process's exit.
    def join(timeout)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + timeout
      threads.each do |thread|
        remaining = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
        thread.join([remaining, 0].max)
      end
    end

    # The threads alive now.
    def threads
      @lock.synchronize { @threads.dup }
    end

    private

    # Starts a thread that will wait for a request. With the lock held: the
    # new thread cannot take a request before it is counted as waiting.
    def spawn
      return if @stopped || @threads.size >= @size

      thread = Thread.new { work }
      thread[:redisse_waiting] = true
      @waiting += 1
      @threads << thread
    end

    def work
      Thread.current.report_on_exception = false
      loop do
        request = @server.next_channel_request
        if request.nil?
          # Woken to take an interrupt: ask again, unless the server stopped.
          next unless @server.channel_requests_closed?

          @lock.synchronize { @stopped = true }
          break
        end

        took
        answer(request)
        break if done_answering
      end
    ensure
      left
    end

    # A thread took a request: if none is left waiting, another starts.
    def took
      @lock.synchronize do
        @waiting -= 1
        Thread.current[:redisse_waiting] = false
        spawn if @waiting.zero?
      end
    end

    # Back to waiting, unless enough threads wait already.
    # @return [Boolean] whether this thread ends
    def done_answering
      @lock.synchronize do
        next true if @waiting >= SPARE

        @waiting += 1
        Thread.current[:redisse_waiting] = true
        false
      end
    end

    # A thread ends: normally, or killed. If it was the last one waiting,
    # another takes its place.
    def left
      @lock.synchronize do
        @threads.delete(Thread.current)
        @waiting -= 1 if Thread.current[:redisse_waiting]
        Thread.current[:redisse_waiting] = false
        spawn if @waiting.zero?
      end
    end

    def answer(request)
      env = ChannelWorkers.rack_env(request)
      # Timeout.timeout(0) would never time out: a request at its deadline
      # still gets a moment, in which the server has answered it already.
      channels = Timeout.timeout([request.time_left, 0.001].max) { call_app(env) }
      request.reply(channels)
    rescue Timeout::Error
      warn "Redisse: channels took more than #{@timeout} s (Redisse.channels_timeout); answering 503"
      request.decline("channels took more than #{@timeout} s")
    rescue Exception => e # rubocop:disable Lint/RescueException
      # Whatever it is (Exception, SystemStackError, NoMemoryError...), the
      # client gets an answer and this thread lives on.
      warn "Redisse: channels failed: #{e.class}: #{e.message}",
           *Array(e.backtrace).first(5).map { |line| "  #{line}" }
      request.fail("#{e.class}: #{e.message}") unless request.answered?
    ensure
      # Killed (Thread#kill) on the way: still an answer.
      request.fail("the thread answering was killed") unless request.answered?
    end

    def call_app(env)
      _status, _headers, body = @app.call(env)
      body.close if body.respond_to?(:close)
      # A middleware that answers by itself (e.g. refusing access) never
      # reaches `channels`, and the request gets no channels.
      Array(env[CHANNELS_ENV_KEY]).map(&:to_s)
    end
  
    # The Rack env of a channel request.
    #
    # Header names with an underscore are left out, as Puma does: in the
    # env, `X_Forwarded_User` would be the same as `X-Forwarded-User`, a
    # header that a proxy in front may set and the application may trust.
    def self.rack_env(request)
      env = {
        "REQUEST_METHOD" => request.request_method,
        "SCRIPT_NAME" => "",
        "PATH_INFO" => request.path,
        "QUERY_STRING" => request.query_string,
        "SERVER_NAME" => request.server_name,
        "SERVER_PORT" => request.server_port.to_s,
        "SERVER_PROTOCOL" => "HTTP/1.1",
        "REMOTE_ADDR" => request.remote_addr,
        "rack.url_scheme" => "http",
        "rack.input" => StringIO.new("".b),
        "rack.errors" => $stderr,
        "rack.multithread" => true,
        "rack.multiprocess" => false,
        "rack.run_once" => false,
        "rack.hijack?" => false
      }
      # Rack 2 wants it; Rack 3 dropped it from the env, and 3.1 the constant.
      env["rack.version"] = Rack::VERSION if defined?(Rack::VERSION)
      request.headers.each do |name, value|
        next if name.include?("_")

        key = name.upcase.tr("-", "_")
        key = "HTTP_#{key}" unless %w[CONTENT_TYPE CONTENT_LENGTH].include?(key)
        # Repeated headers are folded into one value, as HTTP allows.
        env[key] = env.key?(key) ? "#{env[key]}, #{value}" : value
      end
      env
    end
  end
end
