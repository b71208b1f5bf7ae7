# frozen_string_literal: true

require_relative "../support/deployment/headless_chromium"
require_relative "../support/deployment/rails_deployment"
require_relative "../support/deployment/deployment_helpers"

# The Rails example's page with `redisse_stream_from "messages"`, in tabs
# of one Chromium, its stream signed by the app and straight to the redisse
# server.
RSpec.describe "Turbo Streams over redisse in a Rails page" do
  include DeploymentHelpers
  include BrowserHelpers

  before(:context) { skip "bundler is not installed" unless RailsApp.available? }
  with_deployment(type: RailsDeployment, secret: "the Rails deployment's secret")
  with_browser

  let(:publisher) { new_redisse(redis_server: deployment.redis.url) }

  def stream_source_state
    driver.execute_script("return document.getElementById('messages-stream').getAttribute('state')")
  end

  def messages
    driver.find_elements(css: "#messages li").map(&:text)
  end

  def open_message_tabs(count)
    tabs = Array.new(count) do |index|
      driver.switch_to.new_window(:tab) unless index.zero?
      driver.get(deployment.app_url("/messages"))
      driver.window_handle
    end
    wait_for_page("every tab's stream is open") { in_each_tab(tabs) { stream_source_state }.values.uniq == ["open"] }
    tabs
  end

  it "appends what Redisse.publish_turbo_stream publishes in every open tab, over one stream" do
    tabs = open_message_tabs(3)

    publisher.publish_turbo_stream("messages", action: :append, target: "messages",
                                               html: %(<li id="message_1">Hello from Ruby</li>))

    wait_for_page("every tab shows the message") { in_each_tab(tabs) { messages }.values.uniq == [["Hello from Ruby"]] }
    expect(deployment.redisse.stats.fetch("connected")).to eq 1
  end

  it "appends a message posted from a page in every tab" do
    tabs = open_message_tabs(2)

    in_tab(tabs.first) do
      field = driver.find_element(id: "message-text")
      field.clear
      field.send_keys("Posted <from> a page")
      driver.find_element(id: "message-submit").click
    end

    wait_for_page("every tab shows the message") do
      in_each_tab(tabs) { messages }.values.uniq == [["Posted <from> a page"]]
    end
  end
end
