# frozen_string_literal: true

module Redisse
  # The engine's endpoints (see Redisse::Engine): streams through nginx, and
  # fresh signed URLs for the browser client to renew its stream with.
  class StreamsController < Redisse::Engine.parent_controller.constantize
    # GET /events[?streams=...]: an X-Accel-Redirect to the redisse server
    # through nginx, for the channels of the tag (`streams`), or of
    # `Redisse.channels` when none are given.
    def redirect
      endpoint = if params[:streams]
                   channels = verified_channels or return
                   RedirectEndpoint.new(GivenChannels.new(Redisse, channels))
                 else
                   Redisse.redirect_endpoint
                 end
      status, headers, = endpoint.call(request.env)
      headers.each { |name, value| response.headers[name] = value }
      head status
    end

    # GET /events/url?streams=...[&lastEventId=N]: a signed URL on the
    # redisse server for the tag's channels, as text.
    def url
      return head(:not_found) unless Redisse.direct_streams?

      channels = verified_channels or return
      render plain: Redisse.stream_url(Redisse.server_url, channels, last_event_id: params[:lastEventId].presence)
    end

    private

    def verified_channels
      Redisse::Engine.verified_channels(params[:streams]).tap do |channels|
        head :forbidden unless channels
      end
    end

    # Redisse as the redirect endpoint sees it, with the channels of a tag.
    class GivenChannels < SimpleDelegator
      def initialize(redisse, channels)
        super(redisse)
        @channels = channels
      end

      def channels(_env = nil)
        @channels
      end
    end
  end
end
