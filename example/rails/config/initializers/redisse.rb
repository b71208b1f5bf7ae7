# frozen_string_literal: true

# (Named after the gem, as a Rails initializer is; lib/redisse.rb is the gem.)
# The channels of an event stream: `global`, and the session's own channel
# once it has one (see EventsController#index).
Redisse.channels do |env|
  session = ActionDispatch::Request.new(env).session
  ["global", session[:channel]].compact
end

# With REDISSE_SECRET and REDISSE_SERVER_URL set (the gem reads both),
# `redisse_stream_from` renders signed URLs straight to the redisse
# server; without them, the engine's /events, through nginx.
