# frozen_string_literal: true

require "redisse/native"

module Redisse
  # Builds the text of a Server-Sent Event, the same text that {Redisse.publish}
  # stores in Redis and that the server writes to its clients.
  #
  # @example
  #   Redisse::ServerSentEvents.server_sent_event("hi", type: :notice, id: 42)
  #   # => "id: 42\nevent: notice\ndata: hi\n\n"
  module ServerSentEvents
    module_function

    # @param data [#to_s, nil] the payload; `nil` gives an empty `data:` line.
    #   Every line break (`\n`, `\r\n` or a lone `\r`) starts a new `data:` line.
    # @param type [String, Symbol, nil] the `event:` field, omitted when nil
    # @param id [Integer, String, nil] the `id:` field, omitted when nil
    # @param retry [Integer, String, nil] the `retry:` field, omitted when nil
    # @return [String] the event text, ending with an empty line
    # @raise [Redisse::InvalidEventError] if type, id or retry contain CR or LF
    def server_sent_event(data = nil, type: nil, id: nil, retry: nil)
      # `retry` is a keyword of the language, so it can only be read this way.
      retry_value = binding.local_variable_get(:retry)
      Redisse::Native.server_sent_event(String(data), type&.to_s, id&.to_s, retry_value&.to_s)
    end
  end
end
