# frozen_string_literal: true

require "redisse"
require "rack"
require "erb"

# The example application: a page that listens to its channels through
# nginx and the redisse server, and a form that publishes events.
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

  # The app behind `/`: the page, `POST /publish` and `GET /subscriptions`.
  class Application
    PAGE = ERB.new(File.read(File.join(__dir__, "index.html.erb")), trim_mode: "-")

    def call(env)
      request = Rack::Request.new(env)
      case [request.request_method, request.path_info]
      when ["GET", "/"], ["HEAD", "/"] then page(request)
      when ["POST", "/publish"] then publish(request)
      when ["GET", "/subscriptions"] then text(200, "#{ExampleApp.channels(env).join(', ')}\n")
      else text(404, "Not Found\n")
      end
    end

    private

    def page(request)
      private_channel = ExampleApp.private_channel(request.session)
      channels = ExampleApp.channels(request.env)
      html = PAGE.result_with_hash(
        channels: channels,
        private_channel: private_channel,
        all_channels: ["global", *PRIVATE_CHANNELS],
        h: ->(value) { Rack::Utils.escape_html(value.to_s) }
      )
      [200, { "Content-Type" => "text/html; charset=utf-8", "Cache-Control" => "no-store" }, [html]]
    end

    def publish(request)
      channel = request.POST["channel"].to_s
      return text(400, "Missing channel\n") if channel.empty?

      id = Redisse.publish(channel, request.POST["message"].to_s)
      text(200, "Published event #{id} on #{channel}\n")
    rescue Redisse::ConnectionError => e
      text(503, "Could not publish: #{e.message}\n")
    end

    def text(status, body)
      [status, { "Content-Type" => "text/plain; charset=utf-8" }, [body]]
    end
  end
end
