# frozen_string_literal: true

# The exception classes live in Ruby so that applications can rescue them
# without loading the native extension; the extension raises these classes.
module Redisse
  # Base class of every error raised by Redisse. A RuntimeError, as the
  # errors of 0.4 were (its reserved channel names, redis-rb's connection
  # errors): application code that rescues RuntimeError catches ours too.
  class Error < RuntimeError; end

  # Redis could not be reached, or did not answer in time. The message
  # contains the Redis URL, with any password masked.
  class ConnectionError < Error; end

  # An event type, id or retry value contains a CR or LF, which would let
  # the caller inject fields into the event stream.
  class InvalidEventError < Error; end

  # The server command line is invalid; the message is the usage error.
  class CommandLineError < Error; end

  # A setting would make the server run other than asked: a secret set to
  # nil or to an empty string, say, which would open every stream.
  class ConfigurationError < Error; end

  # A channel name cannot be sent through the redirect endpoint because the
  # server gives it another meaning (`polling`, `lastEventId`).
  class ReservedChannelError < Error; end

  # A stream token was asked for, and no secret is set to sign it with
  # (`Redisse.secret`, `REDISSE_SECRET`).
  class MissingSecretError < Error; end
end
