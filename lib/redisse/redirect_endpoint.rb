# frozen_string_literal: true

require "rack"
require "redisse/stream_query"

module Redisse
  # A Rack app that hands event-stream requests over to the Redisse server
  # through nginx: it asks the application for the request's channels and
  # answers with an `X-Accel-Redirect` to the internal location configured in
  # `nginx_internal_url`, with the channels in the query string; or, when a
  # secret is set, in a token (`?token=...`), as a server with that secret
  # requires.
  #
  # Get one with {Redisse.redirect_endpoint}.
  #
  # @example config.ru
  #   map("/events") { run Redisse.redirect_endpoint }
  class RedirectEndpoint
    # Query items with a meaning of their own for the server.
    RESERVED_CHANNELS = %w[polling lastEventId].freeze

    # Case-insensitive headers, whatever the Rack version.
    HEADERS_CLASS = defined?(Rack::Headers) ? Rack::Headers : Rack::Utils::HeaderHash
    private_constant :HEADERS_CLASS

    # @param redisse [Module] the module (Redisse or one that extends it)
    #   whose `channels` and `nginx_internal_url` are used
    def initialize(redisse)
      @redisse = redisse
    end

    # @param env [Hash] the Rack environment
    # @return [Array] a Rack response: 200 with an `X-Accel-Redirect` header
    # @raise [Redisse::ReservedChannelError] if a channel is named `polling`
    #   or `lastEventId` (without a secret: they would be read as options)
    def call(env)
      headers = HEADERS_CLASS.new
      headers["Content-Type"] = "text/plain"
      headers["X-Accel-Redirect"] = redirect_url(env)
      [200, headers, []]
    end

    private

    def redirect_url(env)
      "#{internal_url}?#{query(env)}"
    end

    # Read at each call, so that changing the setting after the endpoint was
    # mounted takes effect.
    def internal_url
      url = @redisse.nginx_internal_url
      raise Redisse::Error, "nginx_internal_url is nil: there is no location to redirect to" if url.nil?

      url.to_s.sub(%r{/*\z}, "/")
    end

    def query(env)
      params = Rack::Utils.parse_query(env["QUERY_STRING"].to_s, "&")
      # A repeated parameter comes back as an Array; the first one wins, as
      # in 0.4 (the server, reading the query as Rack's GET, takes the last).
      # Given without a value, it is passed on empty.
      last_event_id = Array(params["lastEventId"]).first.to_s if params.key?("lastEventId")
      StreamQuery.build(channel_items(env), polling: params.key?("polling"), last_event_id: last_event_id)
    end

    # The channels as query items: each one, or their token.
    def channel_items(env)
      channels = Array(@redisse.channels(env)).map(&:to_s)
      # In a token, a channel cannot be mistaken for an option.
      return ["token=#{@redisse.stream_token(channels)}"] if @redisse.signed_streams?

      refuse_reserved(channels)
      channels.map { |channel| StreamQuery.escape(channel) }
    end

    def refuse_reserved(channels)
      reserved = channels & RESERVED_CHANNELS
      unless reserved.empty?
        raise Redisse::ReservedChannelError,
              "channel name #{reserved.first.inspect} is reserved " \
              "(#{RESERVED_CHANNELS.join(' and ')} cannot be used as channel names)"
      end
    end
  end
end
