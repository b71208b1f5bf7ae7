# frozen_string_literal: true

module Redisse
  # Helpers of Rails views, included by Redisse::Engine.
  module ViewHelpers
    # A `<redisse-stream-source>` element: the Turbo Streams published on
    # `channels` (`Redisse.publish_turbo_stream`) rendered in the page, over
    # one stream shared by every tab of the browser.
    #
    # With a secret and a server URL (`Redisse.direct_streams?`), its `src`
    # is a signed URL on the redisse server, and its `endpoint` the engine's
    # URL for the next ones; otherwise its `src` is the engine's path, which
    # nginx hands over to the server.
    #
    # @example
    #   <%= redisse_stream_from "room:#{@room.id}" %>
    #
    # @param channels [Array<String, Symbol>]
    # @param attributes [Hash] more HTML attributes (`id`, `class`, `key`...)
    # @return [ActiveSupport::SafeBuffer]
    def redisse_stream_from(*channels, **attributes)
      channels = channels.flatten.map(&:to_s)
      raise ArgumentError, "redisse_stream_from needs at least one channel" if channels.empty?

      streams = Redisse::Engine.sign_channels(channels)
      source = if Redisse.direct_streams?
                 { src: Redisse.stream_url(Redisse.server_url, channels), endpoint: redisse.stream_url_path(streams: streams) }
               else
                 { src: redisse.stream_path(streams: streams) }
               end
      content_tag("redisse-stream-source", "", **attributes, **source)
    end
  end
end
