# frozen_string_literal: true

require "net/http"
require "uri"
require_relative "deployment"

# An HTTP GET read in a background thread as it arrives, for event streams
# (long polling included) through nginx.
class StreamRequest
  attr_reader :response, :ended_at

  def initialize(port, path, headers = {}, timeout: 15)
    @mutex = Mutex.new
    @body = +""
    @thread = Thread.new do
      Thread.current.report_on_exception = false
      Net::HTTP.start("127.0.0.1", port, open_timeout: 2, read_timeout: timeout) do |http|
        request = Net::HTTP::Get.new(path, { "Accept" => "text/event-stream" }.merge(headers))
        http.request(request) do |response|
          @response = response
          response.read_body { |chunk| @mutex.synchronize { @body << chunk } }
        end
      end
      @ended_at = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    end
  end

  # What arrived so far.
  def body
    @mutex.synchronize { @body.dup }
  end

  # Waits for the response to end.
  # @return [String] the whole body
  def finish(timeout: 15)
    raise "the response did not end within #{timeout} s; got #{body.inspect}" unless @thread.join(timeout)

    @thread.value # raises what the thread raised
    body
  end

  def close
    @thread.kill
    @thread.join(1)
  end
end

module DeploymentHelpers
  # A browser-like session of the example app through nginx: its cookie and
  # its private channel, from a first visit.
  CookieSession = Struct.new(:cookie, :private_channel)

  def new_cookie_session(deployment)
    response = Net::HTTP.get_response(URI(deployment.url("/")))
    expect(response.code).to eq "200"
    CookieSession.new(response["Set-Cookie"][/\A[^;]+/], response.body[%r{id="private-channel">([^<]+)<}, 1])
  end

  # Two sessions with different private channels (a new session gets one of
  # four at random).
  def two_cookie_sessions(deployment)
    first = new_cookie_session(deployment)
    second = wait_until("a session gets another private channel than #{first.private_channel}") do
      session = new_cookie_session(deployment)
      session if session.private_channel != first.private_channel
    end
    [first, second]
  end

  # An event exactly as the server writes it.
  def event_text(id, data, type: "message")
    "id: #{id}\nevent: #{type}\ndata: #{data}\n\n"
  end
end
