# frozen_string_literal: true

require "uri"

module Redisse
  # The query string of a stream request, as the server reads it: its
  # options first, `polling` and `lastEventId=N`, then what names the
  # channels: the channels themselves, or a token that holds them.
  module StreamQuery
    module_function

    # @example
    #   StreamQuery.build(["token=AZOS..."], polling: true, last_event_id: 42)
    #   # => "polling&lastEventId=42&token=AZOS..."
    #
    # @param channel_items [Array<String>] query items, already form-encoded
    # @param polling [Boolean] whether the stream long-polls
    # @param last_event_id [#to_s, nil] the last event the client has; nil: none
    # @return [String]
    def build(channel_items, polling:, last_event_id:)
      options = []
      options << "polling" if polling
      options << "lastEventId=#{escape(last_event_id)}" unless last_event_id.nil?
      (options + channel_items).join("&")
    end

    # Form-encodes a value (a space is `+`), as Rack does.
    # @return [String]
    def escape(value)
      URI.encode_www_form_component(value.to_s)
    end
  end
end
