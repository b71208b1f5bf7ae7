# frozen_string_literal: true

require "redisse"
require "rack"
require "erb"

# The example application: pages that listen to their channels with the
# browser client (app/javascript/redisse.js), one through nginx, one
# straight to the redisse server with a signed URL, one with Turbo Streams,
# and forms that publish events.
#
# Every session listens to `global` and to one of four private channels,
# picked at random on its first visit and kept in the session cookie.
module ExampleApp
  PRIVATE_CHANNELS = %w[private_1 private_2 private_3 private_4].freeze

  module_function

  # The session's private channel, chosen on first use.
  def private_channel(session)
    session["channel"] = PRIVATE_CHANNELS.sample unless PRIVATE_CHANNELS.include?(session["channel"])
    session["channel"]
  end

  # The channels of a request: what the redirect endpoint sends the redisse
  # server to. A request without a session (e.g. curl without the cookie)
  # only gets `global`.
  def channels(env)
    session = env["rack.session"]
    private_channel = session && session["channel"]
    ["global", private_channel].compact
  end

  # Where browsers reach the redisse server without nginx, for the page at
  # `/direct`: `STREAM_SERVER_URL` (bin/demo sets it), or nil.
  def stream_server_url
    ENV["STREAM_SERVER_URL"]
  end

  # Whether the page at `/direct` can work: a URL for the server, and a
  # secret to sign the stream URLs with (REDISSE_SECRET, read by the gem).
  def direct_streams?
    !stream_server_url.nil? && Redisse.signed_streams?
  end

  # The app behind `/`: the pages (`/`, `/direct` and `/turbo`),
  # `GET /stream_url`, `POST /publish`, `POST /turbo/messages` and
  # `GET /subscriptions`.
  class Application
    PAGE = ERB.new(File.read(File.join(__dir__, "index.html.erb")), trim_mode: "-")
    TURBO_PAGE = ERB.new(File.read(File.join(__dir__, "turbo.html.erb")), trim_mode: "-")
    NO_DIRECT_STREAMS = "Streams without nginx need REDISSE_SECRET and STREAM_SERVER_URL (bin/demo sets both)\n"

    def initialize
      # How many times the Turbo page was rendered: a refresh shows.
      @renders = 0
      @renders_lock = Mutex.new
    end

    def call(env)
      request = Rack::Request.new(env)
      case [request.request_method, request.path_info]
      when ["GET", "/"], ["HEAD", "/"] then page(request, direct: false)
      when ["GET", "/direct"], ["HEAD", "/direct"] then direct_page(request)
      when ["GET", "/turbo"], ["HEAD", "/turbo"] then turbo_page(request)
      when ["GET", "/stream_url"] then stream_url(request)
      when ["POST", "/publish"] then publish(request)
      when ["POST", "/turbo/messages"] then publish_turbo_message(request)
      when ["GET", "/subscriptions"] then text(200, "#{ExampleApp.channels(env).join(', ')}\n")
      else text(404, "Not Found\n")
      end
    end

    private

    # `direct`: the page opens its stream on the redisse server itself, with
    # a URL signed here, and renews it from `/stream_url`; else through
    # nginx, at `/events`.
    def page(request, direct:)
      private_channel = ExampleApp.private_channel(request.session)
      channels = ExampleApp.channels(request.env)
      html(PAGE.result_with_hash(
             direct: direct,
             stream_server_url: ExampleApp.stream_server_url,
             stream_url: direct ? signed_url(request) : nil,
             channels: channels,
             private_channel: private_channel,
             all_channels: ["global", *PRIVATE_CHANNELS],
             h: ->(value) { Rack::Utils.escape_html(value.to_s) }
           ))
    end

    # The Turbo page: a list that `POST /turbo/messages` appends to, in
    # every tab, with a `<turbo-stream>` published on `global`. Its stream
    # is direct when the app can sign URLs, through nginx otherwise.
    def turbo_page(request)
      ExampleApp.private_channel(request.session)
      renders = @renders_lock.synchronize { @renders += 1 }
      html(TURBO_PAGE.result_with_hash(
             stream_url: ExampleApp.direct_streams? ? signed_url(request) : nil,
             renders: renders,
             h: ->(value) { Rack::Utils.escape_html(value.to_s) }
           ))
    end

    def html(body)
      [200, { "content-type" => "text/html; charset=utf-8", "cache-control" => "no-store" }, [body]]
    end

    def direct_page(request)
      return text(503, NO_DIRECT_STREAMS) unless ExampleApp.direct_streams?

      page(request, direct: true)
    end

    # A signed URL for a stream on the session's channels, straight to the
    # redisse server: what the page at /direct opens, and asks for again
    # when its token expires, with the last event id it received.
    def stream_url(request)
      return text(503, NO_DIRECT_STREAMS) unless ExampleApp.direct_streams?

      [200, { "content-type" => "text/plain; charset=utf-8", "cache-control" => "no-store" }, [signed_url(request)]]
    end

    def signed_url(request)
      Redisse.stream_url(ExampleApp.stream_server_url, ExampleApp.channels(request.env),
                         last_event_id: request.GET["lastEventId"])
    end

    def publish(request)
      channel = request.POST["channel"].to_s
      return text(400, "Missing channel\n") if channel.empty?

      id = Redisse.publish(channel, request.POST["message"].to_s)
      text(200, "Published event #{id} on #{channel}\n")
    rescue Redisse::ConnectionError => e
      text(503, "Could not publish: #{e.message}\n")
    end

    # Appends the message to the Turbo page's list, in every tab.
    def publish_turbo_message(request)
      message = request.POST["message"].to_s
      return text(400, "Missing message\n") if message.empty?

      id = Redisse.turbo_append("global", target: "messages",
                                          html: %(<li class="message">#{Rack::Utils.escape_html(message)}</li>))
      text(200, "Published event #{id} on global\n")
    rescue Redisse::ConnectionError => e
      text(503, "Could not publish: #{e.message}\n")
    end

    def text(status, body)
      [status, { "content-type" => "text/plain; charset=utf-8" }, [body]]
    end
  end
end
