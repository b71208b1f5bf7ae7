# frozen_string_literal: true

RSpec.describe "Redisse configuration" do
  # Settings read the environment lazily, so each example sets it first.
  around do |example|
    saved = ENV.to_h.slice("REDISSE_REDIS", "REDISSE_PORT")
    example.run
  ensure
    %w[REDISSE_REDIS REDISSE_PORT].each { |name| ENV[name] = saved[name] }
  end

  it "has a version" do
    expect(Redisse::VERSION).to eq("1.0.0")
  end

  describe "redis_server" do
    it "defaults to REDISSE_REDIS" do
      ENV["REDISSE_REDIS"] = "redis://example.com:1234/5"

      expect(new_redisse.redis_server).to eq("redis://example.com:1234/5")
    end

    it "defaults to the local Redis without REDISSE_REDIS" do
      ENV.delete("REDISSE_REDIS")

      expect(new_redisse.redis_server).to eq("redis://localhost:6379/")
    end

    it "can be set" do
      redisse = new_redisse(redis_server: "redis://example.com/")

      expect(redisse.redis_server).to eq("redis://example.com/")
    end
  end

  describe "default_port" do
    it "defaults to REDISSE_PORT" do
      ENV["REDISSE_PORT"] = "9090"

      expect(new_redisse.default_port).to eq("9090")
    end

    it "defaults to 8080 without REDISSE_PORT" do
      ENV.delete("REDISSE_PORT")

      expect(new_redisse.default_port).to eq(8080)
    end

    it "can be set" do
      expect(new_redisse(default_port: 4000).default_port).to eq(4000)
    end
  end

  describe "nginx_internal_url" do
    it "defaults to /redisse" do
      expect(new_redisse.nginx_internal_url).to eq("/redisse")
    end

    it "keeps an explicit nil (in-process mode)" do
      expect(new_redisse(nginx_internal_url: nil).nginx_internal_url).to be_nil
    end
  end

  it "has publisher timeouts" do
    redisse = new_redisse

    expect([redisse.connect_timeout, redisse.command_timeout]).to eq([1.0, 5.0])
    redisse.connect_timeout = 0.5
    redisse.command_timeout = 2
    expect([redisse.connect_timeout, redisse.command_timeout]).to eq([0.5, 2])
  end

  describe "channels" do
    it "calls the block given before with the env" do
      redisse = new_redisse
      redisse.channels { |env| ["user:#{env['user']}", "global"] }

      expect(redisse.channels("user" => "1")).to eq(%w[user:1 global])
    end

    it "raises NotImplementedError before a block was given" do
      expect { new_redisse.channels({}) }.to raise_error(NotImplementedError)
      expect { Redisse.channels({}) }.to raise_error(NotImplementedError)
    end
  end

  it "records middlewares with their arguments and block" do
    middleware = Class.new
    block = proc {}
    redisse = new_redisse

    redisse.use(middleware, :a, key: 1, &block)

    expect(redisse.middlewares).to eq([[middleware, [:a, { key: 1 }], block]])
  end

  describe "a module extending Redisse" do
    it "has its own settings" do
      redisse = new_redisse(redis_server: "redis://other/", default_port: 1, nginx_internal_url: nil)
      redisse.channels { ["mine"] }
      redisse.use(Class.new)

      expect(Redisse.redis_server).to eq(REDIS_SERVER.url)
      expect(Redisse.default_port).not_to eq(1)
      expect(Redisse.nginx_internal_url).to eq("/redisse")
      expect { Redisse.channels({}) }.to raise_error(NotImplementedError)
      expect(Redisse.middlewares).to be_empty
    end

    it "has its own events and publisher" do
      redisse = new_redisse
      redisse.test_mode!
      redisse.publish(:global, "test")

      expect { Redisse.published }.to raise_error(Redisse::Error)
      expect(Redisse.publish(:global, "real")).to eq(1)
      expect(redisse.published.map(&:data)).to eq(["test"])
    end

    it "publishes to its own Redis" do
      redisse = new_redisse(redis_server: REDIS_SERVER.url.sub(%r{/\z}, "/2"))

      redisse.publish(:global, "in db 2")
      Redisse.publish(:global, "in db 0")

      expect(redis(db: 2).zrange("global", 0, -1)).to eq(["id: 1\nevent: message\ndata: in db 2\n\n"])
      expect(redis.zrange("global", 0, -1)).to eq(["id: 1\nevent: message\ndata: in db 0\n\n"])
    end
  end

  it "uses a new publisher when the Redis URL changes" do
    redisse = new_redisse(redis_server: REDIS_SERVER.url.sub(%r{/\z}, "/4"))
    redisse.publish(:global, "first")

    redisse.redis_server = REDIS_SERVER.url.sub(%r{/\z}, "/5")
    redisse.publish(:global, "second")

    expect(redis(db: 4).zcard("global")).to eq(1)
    expect(redis(db: 5).zcard("global")).to eq(1)
  end
end
