# frozen_string_literal: true

# The one way the specs wait for something: poll until it holds, up to a
# deadline, then fail saying what was awaited. No fixed sleeps.
#
# Included in every example group (spec_helper) and in the harness classes;
# `Waiting.wait_until` works too.
module Waiting
  class Timeout < StandardError; end

  module_function

  def monotonic_now
    Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end

  # Seconds the block took.
  def elapsed
    started = monotonic_now
    yield
    monotonic_now - started
  end

  # Polls the block until it returns something truthy, and returns that.
  # The block is called once more after the deadline before failing.
  #
  # @param what [String] what is awaited, for the failure message
  # @param timeout [Numeric] seconds
  # @param interval [Numeric] seconds between two polls
  # @param detail [#call, nil] called on failure; what it returns is added
  #   to the message (a log, what a page shows...)
  # @raise [Waiting::Timeout]
  def wait_until(what, timeout: 5, interval: 0.01, detail: nil)
    deadline = monotonic_now + timeout
    loop do
      result = yield
      return result if result

      if monotonic_now > deadline
        message = "timed out after #{timeout} s waiting until #{what}"
        raise Timeout, detail ? "#{message}\n#{detail.call}" : message
      end

      sleep interval
    end
  end
end
