# frozen_string_literal: true

require_relative "boot"

require "rails"
# Only what the example uses: no database, mailer, jobs or cable. The asset
# pipeline (the Gemfile's) serves the browser client (from the gem) and Turbo.
require "action_controller/railtie"
if Gem.loaded_specs.key?("propshaft")
  require "propshaft"
else
  require "sprockets/railtie"
end

# Loads the default group and the environment's: the redisse gem among them.
Bundler.require(*Rails.groups)

module RedisseRailsExample
  class Application < Rails::Application
    # Those of the Rails it runs on: 6.1 on Debian 12, 7.2 on Debian 13.
    config.load_defaults Rails::VERSION::STRING.to_f

    config.eager_load = Rails.env.production?
    config.cache_classes = !Rails.env.development?
    config.consider_all_requests_local = !Rails.env.production?
    config.hosts.clear
    config.secret_key_base = ENV.fetch("SECRET_KEY_BASE") { SecureRandom.hex(64) }
    config.session_store :cookie_store, key: "_redisse_rails_example"

    # Logs go to the console, and compiled assets stay in memory (Propshaft
    # compiles nothing), so that the example writes nothing in its folder.
    config.logger = ActiveSupport::Logger.new($stdout)
    config.log_level = Rails.env.test? ? :warn : :info
    if defined?(Sprockets::Railtie)
      config.assets.configure { |environment| environment.cache = Sprockets::Cache::MemoryStore.new }
      config.assets.debug = false
    end

    # Turbo, from npm (bin/setup runs `npm ci` at the root of the checkout);
    # an application would rather take turbo-rails, or pin it.
    config.assets.paths << File.expand_path("../../../node_modules/@hotwired/turbo/dist", __dir__)
    config.assets.precompile << "turbo.es2017-esm.js"
  end
end
