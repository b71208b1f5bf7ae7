# frozen_string_literal: true

module Redisse
  # The gem version.
  VERSION = "1.0.0"
end
