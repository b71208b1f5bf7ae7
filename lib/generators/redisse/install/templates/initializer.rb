# frozen_string_literal: true

# Redisse: Server-Sent Events published from this application, served by
# the redisse server. See the gem's README and doc/browser-client.md.

# Where events are published, and the redisse server reads them from.
# Redisse.redis_server = ENV.fetch("REDISSE_REDIS", "redis://localhost:6379/")

# Signed streams: with a secret (the redisse server's too) and the server's
# URL as browsers reach it, pages connect to the server directly, and
# `redisse_stream_from` renders signed URLs that the browser renews before
# they expire. Without them, pages get their streams at /events, which
# nginx hands over to the server (see the README's "Behind nginx").
# Redisse.secret = ENV["REDISSE_SECRET"]             # the default
# Redisse.server_url = ENV["REDISSE_SERVER_URL"]     # the default, e.g. https://events.example.com/
# Redisse.token_lifetime = 600                       # seconds, one hour by default

# The channels of a stream requested at /events without a tag's channels
# (a page's own EventSource, say).
Redisse.channels do |env|
  %w[global]
end

# The engine's controller (/events, /events/url) inherits from this one, so
# that its filters (authentication...) guard the streams and their renewals.
# Rails.application.config.redisse.parent_controller = "ApplicationController"
