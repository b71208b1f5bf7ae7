# frozen_string_literal: true

require "cgi"
require "redisse/errors"

module Redisse
  # A Turbo Stream action, target or HTML that Turbo cannot render.
  class InvalidTurboStreamError < Error; end

  # Turbo Streams over redisse: `<turbo-stream>` messages published as
  # regular events, of type `turboStream`, which the browser client's
  # `<redisse-stream-source>` element hands to Turbo in every tab. The HTML
  # format is Turbo's (small and stable), written here: no `turbo-rails`
  # needed.
  module TurboStreams
    # The event type of a Turbo Stream message; the client's
    # `TURBO_STREAM_EVENT`.
    EVENT_TYPE = :turboStream

    # The actions Turbo 7 and 8 render. `refresh` takes no target.
    ACTIONS = %w[append prepend replace update remove before after morph refresh].freeze
    # Actions whose message carries no HTML.
    WITHOUT_TEMPLATE = %w[remove refresh].freeze

    module_function

    # The `<turbo-stream>` element of one action.
    #
    # @example
    #   TurboStreams.message(action: :append, target: "messages", html: "<li>Hi</li>")
    #   # => '<turbo-stream action="append" target="messages"><template><li>Hi</li></template></turbo-stream>'
    #
    # @param action [String, Symbol] one of {ACTIONS}
    # @param target [String, nil] the id of the element acted on
    # @param targets [String, nil] a CSS selector, instead of `target`
    # @param html [String, nil] the content (inserted as HTML, not escaped)
    # @return [String]
    # @raise [Redisse::InvalidTurboStreamError]
    def message(action:, target: nil, targets: nil, html: nil)
      action = action.to_s
      raise InvalidTurboStreamError, "unknown Turbo Stream action #{action.inspect} (#{ACTIONS.join(', ')})" unless ACTIONS.include?(action)

      attributes = { "action" => action }
      if action != "refresh"
        if (target.nil? || target.to_s.empty?) == (targets.nil? || targets.to_s.empty?)
          raise InvalidTurboStreamError, "a #{action} Turbo Stream needs a target or targets, not both"
        end

        attributes[target ? "target" : "targets"] = (target || targets).to_s
      end
      template = WITHOUT_TEMPLATE.include?(action) ? "" : "<template>#{html}</template>"
      tag_attributes = attributes.map { |name, value| %( #{name}="#{CGI.escapeHTML(value)}") }.join
      "<turbo-stream#{tag_attributes}>#{template}</turbo-stream>"
    end
  end

  # @!group Turbo Streams

  # Publishes a Turbo Stream action on `channel`: the pages listening to it
  # with `<redisse-stream-source>` (`redisse_stream_from` in Rails views)
  # render it.
  #
  # @example
  #   Redisse.publish_turbo_stream("room:1", action: :append, target: "messages",
  #                                html: ApplicationController.render(message))
  #
  # @param channel [String, Symbol]
  # @param action, target, targets, html see {TurboStreams.message}
  # @return [Integer] the event id
  # @raise [Redisse::InvalidTurboStreamError]
  def publish_turbo_stream(channel, action:, target: nil, targets: nil, html: nil)
    publish(channel, TurboStreams::EVENT_TYPE => TurboStreams.message(action: action, target: target,
                                                                     targets: targets, html: html))
  end

  # Appends `html` to the children of the target.
  # @return [Integer] the event id
  def turbo_append(channel, html:, target: nil, targets: nil)
    publish_turbo_stream(channel, action: :append, target: target, targets: targets, html: html)
  end

  # Prepends `html` to the children of the target.
  # @return [Integer] the event id
  def turbo_prepend(channel, html:, target: nil, targets: nil)
    publish_turbo_stream(channel, action: :prepend, target: target, targets: targets, html: html)
  end

  # Replaces the target with `html`.
  # @return [Integer] the event id
  def turbo_replace(channel, html:, target: nil, targets: nil)
    publish_turbo_stream(channel, action: :replace, target: target, targets: targets, html: html)
  end

  # Replaces the content of the target with `html`.
  # @return [Integer] the event id
  def turbo_update(channel, html:, target: nil, targets: nil)
    publish_turbo_stream(channel, action: :update, target: target, targets: targets, html: html)
  end

  # Removes the target.
  # @return [Integer] the event id
  def turbo_remove(channel, target: nil, targets: nil)
    publish_turbo_stream(channel, action: :remove, target: target, targets: targets)
  end

  # @!endgroup
end
