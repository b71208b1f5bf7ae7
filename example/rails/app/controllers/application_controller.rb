# frozen_string_literal: true

# The engine's controller (/events, /events/url) inherits from this one:
# an application's authentication here guards the streams too.
class ApplicationController < ActionController::Base
end
