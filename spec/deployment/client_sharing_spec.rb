# frozen_string_literal: true

require_relative "../support/deployment/headless_chromium"
require_relative "../support/deployment/deployment_helpers"

# The browser client's one stream per browser: the example's page at
# /direct (a signed URL straight to the redisse server, over HTTP/1.1) in
# several tabs of one Chromium, one session.
RSpec.describe "The browser client's stream shared by the tabs of a browser" do
  include DeploymentHelpers
  include BrowserHelpers

  with_deployment(secret: "the deployment's secret")
  with_browser

  let(:publisher) { new_redisse(redis_server: deployment.redis_url) }

  def connected
    deployment.redisse.stats.fetch("connected")
  end

  # Three tabs that got one event: the tabs, the leader, the event's id.
  def three_tabs_with_an_event
    tabs = open_tabs(deployment.app_url("/direct"), 3)
    wait_until_open(tabs)
    leader = in_each_tab(tabs) { client_role }.key("leader")
    before = publisher.publish("global", "before")
    wait_for_ids(tabs, [before])
    [tabs, leader, before]
  end

  # When (ms) the tab of `others` that leads once the leader is gone opened
  # its stream, as the leader, at `since` or later.
  def new_leaders_stream_opened_at(others, since)
    leader = wait_until("another tab leads", timeout: 5) { in_each_tab(others) { client_role }.key("leader") }
    wait_until("the new leader's stream opens", timeout: 5) do
      in_tab(leader) do
        roles, states = page_log.values_at("roles", "states")
        became_leader = roles.reverse.find { |role, _at| role == "leader" }&.last
        became_leader && states.find { |state, at| state == "open" && at >= [became_leader, since].max }&.last
      end
    end
  end

  # Crashes the tab's page, as a killed renderer process does.
  def crash(tab)
    in_tab(tab) { driver.execute_cdp("Page.crash") }
  rescue Selenium::WebDriver::Error::WebDriverError
    nil # the tab is gone before it could answer
  end

  # The tabs of the example before are closed, their streams not always
  # yet: the server's count starts from none.
  before { wait_until("the streams of the example before have closed", timeout: 10) { connected.zero? } }

  it "gives every event to eight tabs over one stream" do
    tabs = open_tabs(deployment.app_url("/direct"), 8)
    wait_until_open(tabs)

    expect(in_each_tab(tabs) { client_role }.values.tally).to eq("leader" => 1, "follower" => 7)
    expect(connected).to eq 1

    ids = Array.new(5) { |index| publisher.publish("global", "event #{index}") }
    wait_for_ids(tabs, ids)

    expect(in_each_tab(tabs) { page_ids }.values.uniq).to eq [ids]
    expect(connected).to eq 1
  end

  it "starves the seventh tab without sharing, until another tab closes" do
    tabs = open_tabs(deployment.app_url("/direct?share=0"), 8)
    six = tabs.first(6)
    wait_until_open(six)
    expect(in_each_tab(tabs) { client_role }.values.uniq).to eq ["alone"]

    ids = Array.new(3) { |index| publisher.publish("global", "event #{index}") }
    wait_for_ids(six, ids)

    # Everything reached the six open tabs; the other two are still waiting
    # for a connection, and have nothing.
    starved = tabs.last(2)
    expect(in_each_tab(starved) { [client_state, page_ids] }.values).to eq [["connecting", []]] * 2
    expect(connected).to eq 6

    in_tab(tabs.first) { driver.close }
    wait_until_open([tabs[6]])
    expect(connected).to eq 6
  end

  it "falls back to a stream per tab in a browser without Web Locks" do
    # The pages of these tabs, as an older browser has them.
    tabs = open_tabs(deployment.app_url("/direct"), 2) do
      driver.execute_cdp("Page.addScriptToEvaluateOnNewDocument",
                         source: "Object.defineProperty(Navigator.prototype, 'locks', { get: () => undefined })")
    end
    wait_until_open(tabs)

    expect(in_each_tab(tabs) { [driver.execute_script("return navigator.locks"), client_role] }.values)
      .to eq [[nil, "alone"]] * 2
    id = publisher.publish("global", "to each tab")
    wait_for_ids(tabs, [id])
    expect(connected).to eq 2
  end

  it "hands the stream over within 2 s when the leader tab closes, and every tab gets every event once" do
    tabs = open_tabs(deployment.app_url("/direct"), 4)
    wait_until_open(tabs)
    leader = in_each_tab(tabs) { client_role }.key("leader")

    # Events at a steady pace, before, during and after the handover.
    published = Queue.new
    publishing = Thread.new do
      60.times do |index|
        published << publisher.publish("global", "event #{index}")
        sleep 0.05
      end
    end
    wait_until("some events have been published", timeout: 5) { published.size >= 20 }
    closed_at = now_ms
    in_tab(leader) { driver.close }
    others = tabs - [leader]

    opened_at = new_leaders_stream_opened_at(others, closed_at)
    expect(opened_at - closed_at).to be < 2000

    expect(publishing.join(10)).to be_truthy
    ids = Array.new(published.size) { published.pop }
    wait_for_ids(others, ids)
    expect(in_each_tab(others) { page_ids }.values).to all(eq(ids))
    expect(connected).to eq 1
  end

  it "hands the stream over within 2 s when the leader tab crashes" do
    tabs, leader, before = three_tabs_with_an_event

    crashed_at = now_ms
    crash(leader)
    others = tabs - [leader]
    opened_at = new_leaders_stream_opened_at(others, crashed_at)
    expect(opened_at - crashed_at).to be < 2000

    after = publisher.publish("global", "after")
    wait_for_ids(others, [before, after])
    expect(in_each_tab(others) { page_ids }.values).to all(eq([before, after]))
    wait_until("the crashed tab's stream is closed", timeout: 5) { connected == 1 }
  end

  # A closed tab's process may be killed outright, between two of the
  # messages it posts to the other tabs. Here the leader stops posting
  # after its first message about a new event, then crashes: the others
  # must not resume past an event they never got.
  it "gives the other tabs every event when the leader dies while relaying one" do
    tabs, leader, before = three_tabs_with_an_event
    in_tab(leader) do
      driver.execute_script(<<~JS)
        const post = BroadcastChannel.prototype.postMessage
        let dying = false
        BroadcastChannel.prototype.postMessage = function (message) {
          if (dying) return
          if (message.kind === "event" || message.kind === "position") dying = true
          post.call(this, message)
        }
      JS
    end
    during = publisher.publish("global", "while the leader dies")
    wait_for_ids([leader], [before, during])
    crashed_at = now_ms
    crash(leader)

    others = tabs - [leader]
    new_leaders_stream_opened_at(others, crashed_at)
    after = publisher.publish("global", "after")
    wait_for_ids(others, [before, during, after])
    expect(in_each_tab(others) { page_ids }.values).to all(eq([before, during, after]))
  end

  it "hands the stream over within 2 s when the browser freezes the leader tab, which catches up when it thaws" do
    tabs, leader, before = three_tabs_with_an_event

    frozen_at = now_ms
    in_tab(leader) { driver.execute_cdp("Page.setWebLifecycleState", state: "frozen") }
    begin
      others = tabs - [leader]
      opened_at = new_leaders_stream_opened_at(others, frozen_at)
      expect(opened_at - frozen_at).to be < 2000

      during = Array.new(3) { |index| publisher.publish("global", "while frozen #{index}") }
      wait_for_ids(others, [before, *during])
    ensure
      in_tab(leader) { driver.execute_cdp("Page.setWebLifecycleState", state: "active") }
    end
    after = publisher.publish("global", "after")

    ids = [before, *during, after]
    wait_for_ids(tabs, ids)
    expect(in_each_tab(tabs) { page_ids }.values).to all(eq(ids))
    # The frozen tab gave its stream up; Chromium closes a frozen page's
    # request at the latest when the page thaws.
    wait_until("the thawed tab's old stream is closed", timeout: 5) { connected == 1 }
  end
end
