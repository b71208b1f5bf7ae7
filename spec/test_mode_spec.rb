# frozen_string_literal: true

RSpec.describe "Redisse test mode" do
  # Nothing listens there: test mode must not try to reach Redis.
  let(:redisse) { new_redisse(redis_server: "redis://127.0.0.1:1/") }

  it "records published events instead of sending them to Redis" do
    expect(Redisse::Native::Publisher).not_to receive(:new)
    redisse.test_mode!

    redisse.publish(:global, notice: "hi")
    redisse.publish("user:1", "hello")

    expect(redisse.published).to eq([
      Redisse::TestEvent.new(:global, "hi", :notice),
      Redisse::TestEvent.new("user:1", "hello", :message)
    ])
  end

  it "returns increasing Integer ids" do
    redisse.test_mode!

    ids = Array.new(3) { redisse.publish(:global, "hi") }

    expect(ids).to all(be_an(Integer))
    expect(ids).to eq(ids.sort.uniq)
  end

  it "keeps the type as given, a Symbol staying a Symbol" do
    redisse.test_mode!

    redisse.publish(:global, notice: "a")
    redisse.publish(:global, "notice" => "b")

    expect(redisse.published.map(&:type)).to eq([:notice, "notice"])
  end

  it "records nil as a message event" do
    redisse.test_mode!

    redisse.publish(:global, nil)

    expect(redisse.published.first.type).to eq(:message)
  end

  it "refuses a type with a line break, like the real publisher" do
    redisse.test_mode!

    expect { redisse.publish(:global, "a\nb" => "x") }.to raise_error(Redisse::InvalidEventError)
    expect(redisse.published).to be_empty
  end

  it "forgets the recorded events when called again" do
    redisse.test_mode!
    redisse.publish(:global, "hi")

    redisse.test_mode!

    expect(redisse.published).to be_empty
  end

  describe "test_filter=" do
    it "turns test mode on and keeps only the events of a type" do
      redisse.test_filter = :notice

      redisse.publish(:global, notice: "kept")
      redisse.publish(:global, other: "dropped")
      redisse.publish(:global, "dropped too")

      expect(redisse.published).to eq([Redisse::TestEvent.new(:global, "kept", :notice)])
    end

    it "accepts a Proc" do
      redisse.test_filter = ->(type) { type.to_s.start_with?("user_") }

      redisse.publish(:global, user_joined: "1")
      redisse.publish(:global, ping: "2")
      redisse.publish(:global, user_left: "3")

      expect(redisse.published.map(&:data)).to eq(%w[1 3])
    end

    it "forgets the events recorded before" do
      redisse.test_mode!
      redisse.publish(:global, notice: "before")

      redisse.test_filter = :notice

      expect(redisse.published).to be_empty
    end
  end

  it "refuses to list events when not in test mode" do
    expect { Redisse.published }.to raise_error(Redisse::Error, /\.test_mode!/)
    expect { redisse.published }.to raise_error(Redisse::Error, /\.test_mode!/)
  end

  it "works on Redisse itself" do
    Redisse.test_mode!
    Redisse.publish(:global, "hi")

    expect(Redisse.published.map(&:data)).to eq(["hi"])
  end

  describe Redisse::TestEvent do
    it "defaults the type to :message" do
      expect(described_class.new(:global, "hi").type).to eq(:message)
    end

    it "parses its data as JSON" do
      event = described_class.new(:global, '{"a":[1,2]}', :update)

      expect(event.json).to eq("a" => [1, 2])
    end

    it "can be reopened to add helpers" do
      redisse.test_mode!
      redisse.publish(:global, notice: "hi")

      expect(redisse.published.first.shout).to eq("HI")
    end
  end
end

# An application adding a helper, as users of the old gem do.
class Redisse::TestEvent # rubocop:disable Style/ClassAndModuleChildren
  def shout
    data.upcase
  end
end
