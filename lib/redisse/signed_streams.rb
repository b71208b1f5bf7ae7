# frozen_string_literal: true

require "redisse/native"
require "redisse/stream_query"

module Redisse
  # Default of {#token_lifetime}, in seconds.
  DEFAULT_TOKEN_LIFETIME = 3600

  # What the server trims off its secret (ASCII white space, as Rust reads
  # it): trimmed here too, so that both sign with the same bytes.
  SECRET_PADDING = /\A[ \t\n\f\r]+|[ \t\n\f\r]+\z/
  private_constant :SECRET_PADDING

  # @!group Signed streams

  # The secret that signs stream tokens, the server's too (its
  # `REDISSE_SECRET` or `--secret-file`; a server started by {#run} takes
  # this setting). With a secret, {#redirect_endpoint} hands the channels
  # over in a token, and {#stream_token} and {#stream_url} let browsers
  # connect to the server without nginx.
  #
  # White space around it is not part of it, as for the server: a secret
  # read from a file may end with a newline. An empty one is none.
  #
  # @return [String, nil] defaults to `ENV['REDISSE_SECRET']`
  def secret
    # An explicit nil turns signing off whatever the environment says.
    instance_variable_defined?(:@secret) ? @secret : ENV["REDISSE_SECRET"]
  end

  # @param secret [String, nil]
  attr_writer :secret

  # Whether stream requests carry a token: a secret is set.
  def signed_streams?
    !signing_secret.nil?
  end

  # How long a token lasts when no `expires_in` is given, those of
  # {#redirect_endpoint} included. A stream ends when its token expires (with
  # a `tokenExpired` event), so this is also how long a revoked channel can
  # still be listened to.
  #
  # @return [Numeric] seconds, 3600 by default
  def token_lifetime
    @token_lifetime ||= DEFAULT_TOKEN_LIFETIME
  end

  # @param seconds [Numeric]
  attr_writer :token_lifetime

  # A token that lets its bearer listen to `channels` until it expires: a
  # compact, URL-safe string, signed with {#secret}. Put it in a stream URL
  # as `?token=...` (see {#stream_url}); the server then takes the channels
  # from the token, and from nothing else.
  #
  # @example
  #   token = Redisse.stream_token(["global", "user:#{user.id}"], expires_in: 600)
  #
  # @param channels [Array<String, Symbol>, String, Symbol] coerced with
  #   `Array()` and `to_s`
  # @param expires_in [Numeric] seconds; the server counts whole seconds, and
  #   the token lasts at least this long, at most a second more
  # @param key_id [String, nil] a name for the secret, for the application's
  #   own use when it rotates secrets (the server does not read it)
  # @return [String]
  # @raise [Redisse::MissingSecretError] if no secret is set
  def stream_token(channels, expires_in: token_lifetime, key_id: nil)
    expires_at = (Time.now.to_r + expires_in).ceil
    Redisse::Native.stream_token(Array(channels).map(&:to_s), expires_at, signing_secret!, key_id&.to_s)
  end

  # The URL of a stream on `channels`, for a browser that connects to the
  # server directly (`new EventSource(url)`): `base` with a token in its
  # query, after `polling` and `lastEventId` when they are given.
  #
  # @example
  #   Redisse.stream_url("https://events.example.com/", ["global"], last_event_id: 42)
  #   # => "https://events.example.com/?lastEventId=42&token=AZOS..."
  #
  # @param base [String] the server's URL; it may have a query already
  # @param channels see {#stream_token}
  # @param expires_in [Numeric] see {#stream_token}
  # @param polling [Boolean] long polling: the response ends a second after its first event
  # @param last_event_id [Integer, String, nil] replay the history after this event
  # @param key_id [String, nil] see {#stream_token}
  # @return [String]
  # @raise [Redisse::MissingSecretError] if no secret is set
  def stream_url(base, channels, expires_in: token_lifetime, polling: false, last_event_id: nil, key_id: nil)
    token = stream_token(channels, expires_in: expires_in, key_id: key_id)
    query = StreamQuery.build(["token=#{token}"], polling: polling, last_event_id: last_event_id)
    base = base.to_s
    separator = if !base.include?("?") then "?"
                elsif base.end_with?("?", "&") then ""
                else "&"
                end
    "#{base}#{separator}#{query}"
  end

  # @!endgroup

  private

  # The secret as the server reads it, or nil.
  def signing_secret
    secret = self.secret&.to_s&.b&.gsub(SECRET_PADDING, "")
    secret unless secret.nil? || secret.empty?
  end

  def signing_secret!
    signing_secret || raise(MissingSecretError,
                            "no secret to sign stream tokens with: set #{redisse_name}.secret or REDISSE_SECRET")
  end
end
