# frozen_string_literal: true

require "redisse"
require_relative "support/helpers"
require_relative "support/redis_server"
require_relative "support/server_process"

# One redis-server for the whole run. Publishers find it through
# REDISSE_REDIS, like in production.
REDIS_SERVER = RedisServerHarness.new
REDIS_SERVER.start
ENV["REDISSE_REDIS"] = REDIS_SERVER.url
# Servers and modules get a secret only where an example gives one.
ENV.delete("REDISSE_SECRET")
ENV.delete("REDISSE_SECRET_PREVIOUS")
at_exit { REDIS_SERVER.shutdown }

RSpec.configure do |config|
  config.include RedisseSpecHelpers
  config.disable_monkey_patching!
  config.order = :random
  Kernel.srand config.seed

  config.before do
    REDIS_SERVER.start # in case a failed example left it stopped
    redis.flushall
    # Redisse's settings are global: each example starts from scratch.
    Redisse.instance_variables.each { |ivar| Redisse.remove_instance_variable(ivar) }
    Redisse.redis_server = REDIS_SERVER.url
  end

  config.after do
    close_streams
    close_redis_clients
  end
end
