# frozen_string_literal: true

require_relative "boot"

require "rails"
# Only what the example uses: no database, mailer, jobs or cable. The asset
# pipeline serves the browser client (from the gem) and Turbo.
require "action_controller/railtie"
require "sprockets/railtie"

# Loads the default group and the environment's: the redisse gem among them.
Bundler.require(*Rails.groups)

module RedisseRailsExample
  class Application < Rails::Application
    config.load_defaults 6.1

    config.eager_load = Rails.env.production?
    config.cache_classes = !Rails.env.development?
    config.consider_all_requests_local = !Rails.env.production?
    config.hosts.clear
    config.secret_key_base = ENV.fetch("SECRET_KEY_BASE") { SecureRandom.hex(64) }
    config.session_store :cookie_store, key: "_redisse_rails_example"

    # Logs go to the console, and compiled assets stay in memory, so that
    # the example writes nothing in its folder.
    config.logger = ActiveSupport::Logger.new($stdout)
    config.log_level = Rails.env.test? ? :warn : :info
    config.assets.configure { |environment| environment.cache = Sprockets::Cache::MemoryStore.new }
    config.assets.debug = false

    # Turbo, from npm (bin/setup runs `npm ci` at the root of the checkout);
    # an application would rather take turbo-rails, or pin it.
    config.assets.paths << File.expand_path("../../../node_modules/@hotwired/turbo/dist", __dir__)
    config.assets.precompile << "turbo.es2017-esm.js"
  end
end
