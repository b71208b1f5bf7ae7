# frozen_string_literal: true

require "socket"

RSpec.describe "Publishing when Redis is down" do
  # Generous: this bounds hanging, it does not measure the timeout.
  let(:slack) { 3.0 }

  let(:redisse) { new_redisse(connect_timeout: 0.5, command_timeout: 1.0) }

  after { REDIS_SERVER.start }

  it "raises ConnectionError with the URL, without hanging" do
    REDIS_SERVER.stop

    error = nil
    took = elapsed do
      redisse.publish("global", "lost")
    rescue Redisse::ConnectionError => e
      error = e
    end

    expect(error).to be_a(Redisse::ConnectionError)
    # redis-rb's connection errors were RuntimeErrors: `rescue RuntimeError` still catches it.
    expect(error).to be_a(RuntimeError)
    expect(error.message).to include("127.0.0.1:#{REDIS_SERVER.port}")
    expect(took).to be < redisse.connect_timeout + slack
  end

  it "masks the password of the URL in the message" do
    redisse.redis_server = REDIS_SERVER.url(password: "secret")
    REDIS_SERVER.stop

    expect { redisse.publish("global", "lost") }.to raise_error(Redisse::ConnectionError) { |error|
      expect(error.message).to include("127.0.0.1:#{REDIS_SERVER.port}")
      expect(error.message).not_to include("secret")
    }
  end

  it "raises ConnectionError when Redis accepts connections but never answers" do
    silent = TCPServer.new("127.0.0.1", 0)
    accepted = []
    acceptor = Thread.new { loop { accepted << silent.accept } }
    redisse.redis_server = "redis://127.0.0.1:#{silent.addr[1]}/"

    took = elapsed do
      expect { redisse.publish("global", "lost") }.to raise_error(Redisse::ConnectionError)
    end

    expect(took).to be < redisse.connect_timeout + redisse.command_timeout + slack
  ensure
    acceptor&.kill
    accepted&.each(&:close)
    silent&.close
  end

  it "publishes again once Redis is back" do
    expect(redisse.publish("global", "before")).to eq(1)
    REDIS_SERVER.stop
    expect { redisse.publish("global", "lost") }.to raise_error(Redisse::ConnectionError)

    REDIS_SERVER.start

    # A new Redis: its counter starts again.
    expect(redisse.publish("global", "after")).to eq(1)
    expect(redis.zrange("global", 0, -1)).to eq(["id: 1\nevent: message\ndata: after\n\n"])
  end

  it "publishes on the first try after Redis restarted behind its back" do
    redisse.publish("global", "before")
    REDIS_SERVER.stop
    REDIS_SERVER.start

    expect(redisse.publish("global", "after")).to eq(1)
  end
end
