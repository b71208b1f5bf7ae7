# frozen_string_literal: true

require_relative "../support/deployment/headless_chromium"
require_relative "../support/deployment/deployment_helpers"

# The example page in headless Chromium, through nginx, the app and the
# redisse server.
RSpec.describe "The example page in a browser" do
  include DeploymentHelpers
  include BrowserHelpers

  with_deployment
  with_browser

  let(:publisher) { Redisse }

  before { Redisse.redis_server = deployment.redis_url }

  it "lists the session's channels and starts from the current event id" do
    current_id = publisher.publish("elsewhere", "")

    open_page
    wait_for_page("the client knows the current event id") do
      driver.execute_script("return window.redisseStream.lastEventId") == current_id.to_s
    end

    private_channel = page_text("private-channel")
    expect(private_channel).to match(/\Aprivate_[1-4]\z/)
    channels = driver.find_elements(css: "#channels li").map { |item| item.attribute("data-channel") }
    expect(channels).to eq ["global", private_channel]
    expect(page_text("status")).to eq "open"
    # The client keeps the lastEventId event to itself.
    expect(page_events).to eq []
  end

  it "receives an event published with the form" do
    open_page

    Selenium::WebDriver::Support::Select.new(driver.find_element(id: "publish-channel")).select_by(:value, "global")
    message = driver.find_element(id: "publish-message")
    message.clear
    message.send_keys("Hello from the form <b>")
    driver.find_element(id: "publish-submit").click

    type, id, = wait_for_data("Hello from the form <b>")
    expect(type).to eq "message"
    wait_for_page("the page shows the publication result") { page_text("publish-result") != "" }
    expect(page_text("publish-result")).to eq "Published event #{id} on global"
  end

  it "receives the events of its private channel, not those of another session" do
    open_page
    mine = page_text("private-channel")
    others = %w[private_1 private_2 private_3 private_4] - [mine]
    other_session = cookie_session_other_than(deployment, mine)
    other_poll = open_stream(deployment, "/events?polling", { "Cookie" => other_session.cookie })
    wait_until_subscribed(other_poll)

    others.each { |channel| publisher.publish(channel, "for #{channel}") }
    publisher.publish(mine, "for #{mine}")
    publisher.publish("global", "last")
    # Events arrive in publication order: the others would be there by now.
    wait_for_data("last")

    received = page_events.map(&:last)
    expect(received).to include("for #{mine}")
    expect(received & others.map { |channel| "for #{channel}" }).to be_empty
    other_body = other_poll.wait_until_finished(timeout: 15).body
    expect(other_body).to include("data: for #{other_session.private_channel}\n")
    expect(other_body).not_to include("for #{mine}")
  end

  it "reconnects after the redisse server restarts, and gets what it missed once, in order" do
    open_page
    before_id = publisher.publish("global", "before")
    wait_for_data("before")

    deployment.stop_redisse
    wait_for_page("the page notices") { page_text("status") != "open" }
    missed_ids = [publisher.publish("global", "missed 1"), publisher.publish("global", "missed 2")]
    deployment.start_redisse

    # The client retries on its backoff: after half a second to a second,
    # then doubling.
    wait_for_data("missed 2", timeout: 15)
    received = page_events.drop_while { |_type, _id, data| data != "before" }
    expect(received).to eq [
      ["message", before_id.to_s, "before"],
      ["message", missed_ids[0].to_s, "missed 1"],
      ["message", missed_ids[1].to_s, "missed 2"]
    ]
    expect(page_text("status")).to eq "open"
    # Lost, not refused: the client retried without a status.
    expect(page_log["retries"].map { |_delay, status, _at| status }.uniq).to eq [nil]
  end

  it "replays the history after ?lastEventId, announcing missed events as a gap" do
    missing_id = publisher.publish("elsewhere", "not for this page")
    ids = [publisher.publish("global", "b"), publisher.publish("global", "c")]

    open_page("/?lastEventId=#{missing_id}", count: 3)
    expect(page_events).to eq [
      ["gap", "", ""],
      ["message", ids[0].to_s, "b"],
      ["message", ids[1].to_s, "c"]
    ]

    open_page("/?lastEventId=#{ids[0]}", count: 1)
    expect(page_events).to eq [["message", ids[1].to_s, "c"]]
  end
end
