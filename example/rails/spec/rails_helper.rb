# frozen_string_literal: true

ENV["RAILS_ENV"] ||= "test"
require_relative "../config/environment"
require "rack/test"

RSpec.configure do |config|
  config.disable_monkey_patching!
  config.order = :random
end
