# frozen_string_literal: true

require "json"

module Redisse
  # An event recorded by {Redisse.publish} in test mode (see
  # {Redisse.test_mode!}). Channel, data and type are kept as given to
  # `publish`: a Symbol type stays a Symbol.
  #
  # Applications may reopen this class to add their own helpers.
  #
  # @!attribute channel
  #   @return [String, Symbol] the channel given to `publish`
  # @!attribute data
  #   @return [Object] the data given to `publish`
  # @!attribute type
  #   @return [String, Symbol] the event type, `:message` by default
  TestEvent = Struct.new(:channel, :data, :type) do
    def initialize(channel = nil, data = nil, type = :message)
      super
    end

    # @return [Object] the data parsed as JSON
    def json
      JSON.parse(data)
    end
  end
end
