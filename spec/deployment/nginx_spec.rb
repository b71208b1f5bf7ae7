# frozen_string_literal: true

require_relative "../support/deployment/deployment_helpers"

# The example deployment over HTTP: nginx in front of the app (puma) and
# the redisse server, all real processes.
RSpec.describe "The example behind nginx" do
  include DeploymentHelpers
  with_deployment

  let(:publisher) { new_redisse(redis_server: deployment.redis_url) }

  # A long poll through nginx, subscribed.
  def poll(headers = {})
    open_stream(deployment, "/events?polling", headers).tap { |stream| wait_until_subscribed(stream) }
  end

  it "serves the page, and publishes from the form fields" do
    page = Net::HTTP.get_response(URI(deployment.url("/")))
    expect(page.code).to eq "200"
    expect(page.body).to include(%(import { connect } from "/assets/redisse.js"))
    client = Net::HTTP.get_response(URI(deployment.url("/assets/redisse.js")))
    expect(client.code).to eq "200"
    # Rack 2.2 says application/javascript; Rack 3.1, text/javascript (RFC
    # 9239). Browsers run a module of either.
    expect(client["Content-Type"]).to eq(Rack.release.start_with?("2.") ? "application/javascript" : "text/javascript")

    response = Net::HTTP.post_form(URI(deployment.url("/publish")), "channel" => "global", "message" => "curl")
    expect(response.code).to eq "200"
    id = Integer(response.body[/Published event (\d+) on global/, 1])
    expect(redis_client.zrangebyscore("global", id, id)).to eq [event_text(id, "curl")]
  end

  it "closes the server's stream as soon as the browser leaves" do
    stream = poll
    wait_until("the server holds the stream") { deployment.redisse.stats["connected"] == 1 }

    stream.close

    wait_until("the server's stream is closed", timeout: 5) { deployment.redisse.stats["connected"].zero? }
  end

  it "keeps the redisse location internal" do
    response = Net::HTTP.get_response(URI(deployment.url("/redisse/?global")))

    expect(response.code).to eq "404"
  end

  it "long-polls: the response holds the events and ends about 1 s after the first" do
    polling = poll

    first_published_at = monotonic_now
    ids = [publisher.publish("global", "one"), publisher.publish("global", "two")]
    polling.wait_until_finished(timeout: 15)

    expect(polling.status).to eq 200
    expect(polling.headers["content-type"]).to eq "text/event-stream"
    expect(polling.body).to end_with(event_text(ids[0], "one") + event_text(ids[1], "two"))
    expect(polling.closed_at - first_published_at).to be_between(0.9, 3)
  end

  it "sends the events after Last-Event-ID from the history" do
    ids = %w[a b c].map { |data| publisher.publish("global", data) }

    polling = open_stream(deployment, "/events?polling", { "Last-Event-ID" => ids[0].to_s })

    expect(polling.wait_until_finished(timeout: 15).body).to eq event_text(ids[1], "b") + event_text(ids[2], "c")
  end

  it "gives each session the events of its own private channel, not another's" do
    first = new_cookie_session(deployment)
    second = cookie_session_other_than(deployment, first.private_channel)
    polls = [first, second].map { |session| poll("Cookie" => session.cookie) }

    first_id = publisher.publish(first.private_channel, "for the first")
    second_id = publisher.publish(second.private_channel, "for the second")

    expect(polls[0].wait_until_finished(timeout: 15).body).to include(event_text(first_id, "for the first"))
    expect(polls[0].body).not_to include("for the second")
    expect(polls[1].wait_until_finished(timeout: 15).body).to include(event_text(second_id, "for the second"))
    expect(polls[1].body).not_to include("for the first")
  end

  def redis_client
    @redis_client ||= deployment.redis.client
  end

  after { @redis_client&.close }
end
