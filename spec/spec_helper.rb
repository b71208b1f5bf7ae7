# frozen_string_literal: true

require "redisse"
require_relative "support/redis_server"
require_relative "support/waiting"

# One redis-server for the whole run. Publishers find it through
# REDISSE_REDIS, like in production.
REDIS_SERVER = RedisServerHarness.new
REDIS_SERVER.start
ENV["REDISSE_REDIS"] = REDIS_SERVER.url
at_exit { REDIS_SERVER.shutdown }

# `wait_until`, `elapsed` and `monotonic_now` come from Waiting.
module RedisseSpecHelpers
  include Waiting

  # A module with its own Redisse configuration and publisher, pointing at
  # the spec Redis.
  def new_redisse(**settings)
    Module.new { extend Redisse }.tap do |redisse|
      settings.each { |name, value| redisse.public_send("#{name}=", value) }
    end
  end

  # A redis-rb client on the spec Redis, to look at what was published.
  def redis(db: 0)
    @redis_clients ||= {}
    @redis_clients[db] ||= REDIS_SERVER.client(db: db)
  end

  def close_redis_clients
    @redis_clients&.each_value(&:close)
  end
end

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
    close_redis_clients
  end
end
