# frozen_string_literal: true

# Loads the native extension. It raises the exception classes of
# redisse/errors, so those come first.
require "redisse/errors"
require "redisse/redisse"
