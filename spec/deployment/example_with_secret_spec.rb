# frozen_string_literal: true

require "net/http"
require_relative "../support/deployment/headless_chromium"
require_relative "../support/deployment/deployment_helpers"

# The example deployment with a secret, as bin/demo runs it: a stream
# through nginx carries the token that the app put in its X-Accel-Redirect,
# and the page at /direct connects to the redisse server itself, from the
# app's origin, with URLs that the app signs as their tokens expire.
RSpec.describe "The example with signed streams" do
  include DeploymentHelpers

  # Tokens last 2 to 3 s: they expire during the examples.
  with_deployment(secret: "the deployment's secret", token_lifetime: 2)

  let(:publisher) { new_redisse(redis_server: deployment.redis_url) }

  it "streams through nginx with the token of the app's redirect" do
    poll = open_stream(deployment, "/events?polling")
    wait_until_subscribed(poll)

    id = publisher.publish("global", "through nginx")

    expect(poll.wait_until_finished(timeout: 5).body).to include("id: #{id}\n", "data: through nginx\n")
  end

  it "refuses a stream without a token on the redisse server itself" do
    refused = open_stream(deployment.redisse, "/?global").wait_until_finished

    expect([refused.status, refused.body]).to eq([403, "403 Forbidden\nmissing token\n"])
  end

  it "lets pages of the app's own origin read the streams, and no others" do
    signed_path = URI(Net::HTTP.get(URI(deployment.url("/stream_url")))).request_uri
    allowed = [deployment.app_url(""), deployment.url("")].map do |origin|
      stream = open_stream(deployment.redisse, signed_path, { "Origin" => origin })
      [stream.status, stream.headers["access-control-allow-origin"]]
    end

    expect(allowed).to eq([[200, deployment.app_url("")], [200, nil]])
  end

  describe "in a browser" do
    include BrowserHelpers
    with_browser

    before { Redisse.redis_server = deployment.redis_url }

    # Each renewal's reason: "expiring" (before the token expires), or
    # "expired" (after the server's tokenExpired).
    def renewals
      page_log["renewals"]
    end

    it "keeps the page through nginx listening as its tokens expire" do
      open_page

      # Through nginx, the URL has no token to read an expiry from: the
      # client opens it again at the server's tokenExpired.
      wait_for_page("the page renews its stream at the expiry of its token") { renewals.include?("expired") }
      publisher.publish("global", "after a renewal")

      wait_for_data("after a renewal")
    end

    it "receives events on the page without nginx, across origins" do
      open_page(url: deployment.app_url("/direct"))
      expect(page_text("status")).to eq "open"

      id = publisher.publish("global", "straight from the redisse server")

      expect(wait_for_data("straight from the redisse server")).to eq ["message", id.to_s, "straight from the redisse server"]
    end

    it "renews the token of the page without nginx as it expires, and loses no event" do
      open_page(url: deployment.app_url("/direct"))
      sent = [] # as the page lists them
      send_event = ->(data) { sent << ["message", publisher.publish("global", data).to_s, data] }
      send_event.("before")
      wait_for_data("before")
      # From now on the page's requests (for a new URL, for its stream) wait
      # until the test lets them go: meanwhile, the page has no new stream,
      # and none at all once its token expired.
      renewed = driver.execute_script(<<~JS)
        window.fetchNow = window.fetch;
        window.heldFetches = [];
        window.fetch = function (url, options) {
          return new Promise(function (resolve) {
            window.heldFetches.push(function () { resolve(window.fetchNow(url, options)); });
          });
        };
        return window.pageLog.renewals.length;
      JS

      wait_for_page("the page asks for a new URL") { renewals.size > renewed }
      send_event.("while renewing 1")
      send_event.("while renewing 2")
      driver.execute_script(<<~JS)
        window.fetch = window.fetchNow;
        window.heldFetches.forEach(function (release) { release(); });
      JS
      send_event.("after")

      wait_for_data("after")
      expect(page_events.select { |type, _id, _data| type == "message" }).to eq(sent)
    end

    it "cannot read the stream from an origin the server does not list" do
      # The same page through nginx: another port, another origin.
      open_page("/direct", open: false)

      # A CORS refusal is a network error for the page: its client tries
      # again on its backoff, and never opens.
      wait_for_page("the stream fails twice") { page_log["retries"].size >= 2 }

      expect(page_log["states"].map(&:first)).not_to include("open")
      expect(page_events).to be_empty
    end
  end
end
