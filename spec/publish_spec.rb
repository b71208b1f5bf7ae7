# frozen_string_literal: true

require "timeout"

# What lands in Redis must stay byte-identical to the redisse 0.4 gem, so
# that old and new publishers and servers can share one Redis.
RSpec.describe "Redisse.publish" do
  def history(channel, db: 0)
    # The raw reply: members and scores exactly as Redis returns them.
    redis(db: db).call(:zrange, channel.to_s, 0, -1, "WITHSCORES").map(&:b)
  end

  def last_event_id(db: 0)
    redis(db: db).get("redisse:lastEventId")
  end

  # Subscribes with redis-rb, runs the block once the subscription is
  # active, and returns the first message received on the channel.
  def receive_on(channel)
    messages = Queue.new
    subscribed = Queue.new
    subscriber = REDIS_SERVER.client
    thread = Thread.new do
      subscriber.subscribe(channel) do |on|
        on.subscribe { subscribed << true }
        on.message do |_channel, message|
          messages << message
          subscriber.unsubscribe
        end
      end
    end
    Timeout.timeout(5) { subscribed.pop }
    yield
    Timeout.timeout(5) { messages.pop }.b
  ensure
    thread&.kill
    subscriber&.close
  end

  it "increments the event id counter, stores the event text in the channel's history and returns the id" do
    id = Redisse.publish("global", notice: "hello")

    expect(id).to eq(1)
    expect(last_event_id).to eq("1")
    expect(history("global")).to eq(["id: 1\nevent: notice\ndata: hello\n\n", "1"])
  end

  it "uses one counter for all channels" do
    expect(Redisse.publish("a", "one")).to eq(1)
    expect(Redisse.publish("b", "two")).to eq(2)
    expect(Redisse.publish("a", "three")).to eq(3)

    expect(last_event_id).to eq("3")
    expect(history("a")).to eq(["id: 1\nevent: message\ndata: one\n\n", "1",
                                "id: 3\nevent: message\ndata: three\n\n", "3"])
    expect(history("b")).to eq(["id: 2\nevent: message\ndata: two\n\n", "2"])
  end

  it "sends the event text to the channel's subscribers" do
    text = receive_on("global") { Redisse.publish("global", notice: "hello") }

    expect(text).to eq("id: 1\nevent: notice\ndata: hello\n\n")
  end

  it "publishes a String as an event of type message" do
    Redisse.publish("global", "hello")

    expect(history("global").first).to eq("id: 1\nevent: message\ndata: hello\n\n")
  end

  it "splits multi-line data into data lines" do
    text = receive_on("global") { Redisse.publish("global", notice: "first line\nsecond line\n") }

    expect(text).to eq("id: 1\nevent: notice\ndata: first line\ndata: second line\ndata: \n\n")
    expect(history("global").first).to eq(text)
  end

  it "publishes nil as an empty message, like the old gem" do
    Redisse.publish("global", nil)
    Redisse.publish("global", notice: nil)

    expect(history("global")).to eq(["id: 1\nevent: message\ndata: \n\n", "1",
                                     "id: 2\nevent: notice\ndata: \n\n", "2"])
  end

  it "accepts Symbols for the channel and the type" do
    Redisse.publish(:global, notice: "hi")

    expect(history("global").first).to eq("id: 1\nevent: notice\ndata: hi\n\n")
  end

  it "takes the first pair of anything answering to_h" do
    message = Struct.new(:alert).new("fire")
    Redisse.publish("global", message)
    Redisse.publish("global", { first: "1", second: "2" })

    expect(history("global")).to eq(["id: 1\nevent: alert\ndata: fire\n\n", "1",
                                     "id: 2\nevent: first\ndata: 1\n\n", "2"])
  end

  it "converts the data with String()" do
    Redisse.publish("global", count: 42)

    expect(history("global").first).to eq("id: 1\nevent: count\ndata: 42\n\n")
  end

  it "keeps the bytes of data in any encoding" do
    Redisse.publish("global", "caf\xC3\xA9 \xFF".b)

    expect(history("global").first).to eq("id: 1\nevent: message\ndata: caf\xC3\xA9 \xFF\n\n".b)
  end

  it "keeps the newest 100 events of a channel" do
    105.times { |i| Redisse.publish("busy", "event #{i + 1}") }

    scores = redis.zrange("busy", 0, -1, with_scores: true).map(&:last)
    expect(scores).to eq((6..105).map(&:to_f))
    expect(history("busy").first).to eq("id: 6\nevent: message\ndata: event 6\n\n")
    expect(last_event_id).to eq("105")
  end

  it "stores the history and the counter in the database named by the URL" do
    redisse = new_redisse(redis_server: REDIS_SERVER.url.sub(%r{/\z}, "/3"))
    redisse.publish("global", "hi")

    expect(history("global", db: 3)).to eq(["id: 1\nevent: message\ndata: hi\n\n", "1"])
    expect(last_event_id(db: 3)).to eq("1")
    expect(redis.exists?("global")).to be(false)
  end

  describe "line breaks in the data" do
    it "treats a lone CR as a line break" do
      Redisse.publish("global", "a\rb")

      expect(history("global").first).to eq("id: 1\nevent: message\ndata: a\ndata: b\n\n")
    end

    it "treats CRLF as one line break" do
      Redisse.publish("global", "a\r\nb")

      expect(history("global").first).to eq("id: 1\nevent: message\ndata: a\ndata: b\n\n")
    end

    it "leaves data without CR exactly as the old gem wrote it" do
      samples = ["", "plain", "a\nb", "a\n\nb", "\n", "trailing\n", "\nleading",
                 "tab\there", "caf\u00e9 \u{1F600}", "\xFF\xFE".b, "  spaces  "]
      samples.each_with_index do |data, index|
        Redisse.publish("global", data)
        old_gem_text = "id: #{index + 1}\nevent: message\n" \
                       "data: #{data.b.gsub("\n", "\ndata: ")}\n\n"
        expect(history("global")[-2]).to eq(old_gem_text.b), "for #{data.inspect}"
      end
    end
  end

  it "refuses a type with a line break and publishes nothing" do
    Redisse.publish("global", "before")

    expect { Redisse.publish("global", "bad\ntype" => "x") }.to raise_error(Redisse::InvalidEventError)
    expect { Redisse.publish("global", "bad\rtype" => "x") }.to raise_error(Redisse::InvalidEventError)
    expect(last_event_id).to eq("1")
    expect(history("global")).to eq(["id: 1\nevent: message\ndata: before\n\n", "1"])
  end

  context "as a Redis ACL user that may not publish" do
    before do
      redis.call("ACL", "SETUSER", "no-publish", "reset", "on", ">no-publish-pw", "-@all", "+evalsha",
                 "+script|load", "+incr", "+get", "+zadd", "+zremrangebyrank", "~*", "&*")
    end

    after { redis.call("ACL", "DELUSER", "no-publish") }

    it "raises a Redisse::Error that names what is missing, and publishes nothing" do
      redisse = new_redisse(redis_server: "redis://no-publish:no-publish-pw@127.0.0.1:#{REDIS_SERVER.port}/")

      expect { redisse.publish("news", "refused") }
        .to raise_error(Redisse::Error, /may not run PUBLISH on news/) { |e| expect(e.message).not_to include("no-publish-pw") }
      expect(last_event_id).to be_nil
    end
  end
end
