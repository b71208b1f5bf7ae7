# frozen_string_literal: true

require_relative "../support/system/system_helpers"

# Old and new publishers share one Redis during a rolling upgrade (SPEC
# §1): events written the 0.4 gem's way are served like Redisse.publish's.
RSpec.describe "Events from another publisher", :system do
  with_server

  # The 0.4 gem's four commands, sent with redis-cli.
  def publish_with_redis_cli(channel, data, type: "message")
    id = Integer(redis_cli(REDIS_SERVER.port, "INCR", "redisse:lastEventId").strip, 10)
    text = event_text(id, data, type: type)
    redis_cli(REDIS_SERVER.port, "PUBLISH", channel, text)
    redis_cli(REDIS_SERVER.port, "ZADD", channel, id, text)
    redis_cli(REDIS_SERVER.port, "ZREMRANGEBYRANK", channel, 0, -101)
    id
  end

  it "serves events written with redis-cli live and from history, like Redisse.publish's" do
    live = open_stream(server, "/?mixed")
    ours = Redisse.publish(:mixed, "ours\nsecond line")
    foreign = publish_with_redis_cli("mixed", "foreign\nsecond line")
    typed = Redisse.publish(:mixed, notice: "ours again")
    foreign_typed = publish_with_redis_cli("mixed", "foreign again", type: "notice")
    expected = [
      event_text(ours, "ours\nsecond line"),
      event_text(foreign, "foreign\nsecond line"),
      event_text(typed, "ours again", type: "notice"),
      event_text(foreign_typed, "foreign again", type: "notice")
    ]
    expect([ours, foreign, typed, foreign_typed]).to eq([1, 2, 3, 4])

    expect(live.wait_for_events(4).map(&:raw)).to eq(expected)
    # Stored the same way by both publishers.
    expect(redis.zrange("mixed", 0, -1, with_scores: true)).to eq(expected.zip([1.0, 2.0, 3.0, 4.0]))

    history = open_stream(server, "/?mixed", { "Last-Event-Id" => ours.to_s }).wait_for_events(3)
    expect(history.map(&:raw)).to eq(expected.drop(1))
    expect(history.map(&:type)).to eq(%w[message notice notice])
  end

  it "serves a channel whose name has odd bytes, end to end" do
    channel = "\xFF\x00x".b
    reader = open_stream(server, "/?%FF%00x")
    expect(redis.pubsub(:channels).map(&:b)).to include(channel)

    first = publish_old_way(redis, channel, "odd one")
    second = publish_old_way(redis, channel, "odd two")

    expect(reader.wait_for_events(2).map(&:raw)).to eq([event_text(first, "odd one"), event_text(second, "odd two")])
    from_history = open_stream(server, "/?%ff%00x&lastEventId=#{first}").wait_for_events(1)
    expect(from_history.map(&:raw)).to eq([event_text(second, "odd two")])
  end
end
