# frozen_string_literal: true

require_relative "../support/deployment/headless_chromium"
require_relative "../support/deployment/deployment_helpers"

# Tokens of 5 s (5 to 6: the server counts whole seconds) on the example's
# page at /direct, which renews its signed URL from /stream_url.
RSpec.describe "The browser client renewing its token" do
  include DeploymentHelpers
  include BrowserHelpers

  with_deployment(secret: "the deployment's secret", token_lifetime: 5)
  with_browser

  let(:publisher) { new_redisse(redis_server: deployment.redis_url) }

  it "renews before each expiry over 30 s of events: no gap, no duplicate, never tokenExpired" do
    tabs = open_tabs(deployment.app_url("/direct"), 2)
    wait_until_open(tabs)

    # An event every 100 ms for 30 s: 300 at most.
    ids = []
    started = monotonic_now
    while monotonic_now - started < 30 && ids.size < 300
      ids << publisher.publish("global", "event #{ids.size}")
      sleep 0.1
    end
    wait_for_ids(tabs, ids)

    in_each_tab(tabs) do
      # Every event once, in order, and nothing else: no gap, no
      # missedevents, no tokenExpired on the page.
      expect(page_events.map(&:first).uniq).to eq ["message"]
      expect(page_ids).to eq ids
    end
    leader = tabs.find { |tab| in_tab(tab) { client_role } == "leader" }
    renewals = in_tab(leader) { page_log["renewals"] }
    # Each before its token expired, not after the server's tokenExpired.
    expect(renewals.size).to be >= 5
    expect(renewals.uniq).to eq ["expiring"]
    expect(deployment.redisse.stats.fetch("connected")).to eq 1
  end
end
