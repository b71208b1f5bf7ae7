# frozen_string_literal: true

require "rails/engine"
require "redisse/browser"
require "redisse/turbo_streams"
require "redisse/view_helpers"

module Redisse
  # The Rails integration, mounted by `rails generate redisse:install`:
  #
  #   mount Redisse::Engine => "/events"
  #
  # - `GET /events`: the event streams through nginx (the redirect
  #   endpoint), for the channels of `Redisse.channels`, or for those of a
  #   `redisse_stream_from` tag (`?streams=`, signed by the application);
  # - `GET /events/url?streams=...&lastEventId=N`: a fresh signed URL on
  #   the redisse server, for the client to renew its stream with;
  # - the `redisse_stream_from` view helper;
  # - `redisse.js` on the asset path (Sprockets, Propshaft, importmap).
  #
  # Its controller inherits from `Redisse::Engine.parent_controller`
  # (`ApplicationController` by default), so the application's filters,
  # its authentication among them, guard the renewals too.
  class Engine < ::Rails::Engine
    isolate_namespace Redisse
    # Loaded, and reloaded, with the application's routes.
    paths["config/routes.rb"] = File.expand_path("engine/routes.rb", __dir__)

    # The controller that the engine's own inherits from.
    config.redisse = ActiveSupport::OrderedOptions.new
    config.redisse.parent_controller = "ApplicationController"

    class << self
      def parent_controller
        config.redisse.parent_controller
      end

      # Signs a list of channels for a page's tag, with the application's
      # secret_key_base: what the page may ask the engine's endpoints for.
      # @return [String]
      def sign_channels(channels)
        verifier.generate(channels.map(&:to_s))
      end

      # @return [Array<String>, nil] the channels, unless the signature is bad
      def verified_channels(signed)
        channels = verifier.verified(signed.to_s)
        channels if channels.is_a?(Array) && channels.all?(String) && !channels.empty?
      rescue ArgumentError
        nil
      end

      private

      def verifier
        ::Rails.application.message_verifier("redisse streams")
      end
    end

    initializer "redisse.assets" do |app|
      # Sprockets and Propshaft both read config.assets; an app without
      # an asset pipeline has none.
      if app.config.respond_to?(:assets)
        app.config.assets.paths << root.join("app", "javascript").to_s
        app.config.assets.precompile << "redisse.js" if app.config.assets.respond_to?(:precompile)
      end
    end

    initializer "redisse.view_helpers" do
      ActiveSupport.on_load(:action_view) { include Redisse::ViewHelpers }
    end
  end
end
