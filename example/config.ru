# frozen_string_literal: true

# The example app, served by puma behind nginx (see nginx.conf):
#
#   REDISSE_REDIS=redis://localhost:6379/ puma --bind tcp://127.0.0.1:8081 example/config.ru
#
# bin/demo starts it with Redis, the redisse server and nginx. Its settings
# (environment):
#   REDISSE_REDIS      where to publish
#   REDISSE_SECRET     signs the streams (the redisse server's secret too)
#   STREAM_SERVER_URL  the redisse server, as browsers reach it without nginx
#   TOKEN_LIFETIME     seconds a signed stream lasts (default 3600)
#   SESSION_SECRET     signs the session cookie (default: a new one at each start)

# Use the gem from this checkout.
$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))

require "securerandom"
require "rack/session/cookie"
require_relative "app"

Redisse.channels { |env| ExampleApp.channels(env) }
Redisse.token_lifetime = Integer(ENV["TOKEN_LIFETIME"], 10) if ENV["TOKEN_LIFETIME"]

use Rack::Session::Cookie,
    key: "redisse_example",
    # A new secret at each start forgets the sessions, which is fine here.
    secret: ENV.fetch("SESSION_SECRET") { SecureRandom.hex(64) },
    coder: Rack::Session::Cookie::Base64::JSON.new,
    same_site: :lax,
    httponly: true

# The browser client, and Turbo for the Turbo page (from npm: bin/setup
# runs `npm ci`).
root = File.expand_path("..", __dir__)
map "/assets" do
  run Rack::Cascade.new([File.join(root, "app", "javascript"),
                         File.join(root, "node_modules", "@hotwired", "turbo", "dist")]
                          .map { |folder| Rack::Files.new(folder, "cache-control" => "no-cache") })
end

# Answers with an X-Accel-Redirect to nginx's internal /redisse location,
# with the session's channels in the query string, or in a token when
# REDISSE_SECRET is set.
map "/events" do
  run Redisse.redirect_endpoint
end

run ExampleApp::Application.new
