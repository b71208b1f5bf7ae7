# frozen_string_literal: true

# Publishing throughput: Redisse.publish against the 0.4 gem's way (four
# commands, INCR, PUBLISH, ZADD and ZREMRANGEBYRANK, through the redis gem),
# with 1 and with 8 threads. Prints one JSON line:
#
#   ruby -I lib bench/publisher.rb --redis redis://127.0.0.1:6379/ --seconds 5
#
# {"seconds":5.0,"new_1":...,"old_1":...,"ratio_1":...,"new_8":...,"old_8":...,"ratio_8":...}

require "json"
require "optparse"
require "redis"
require "redisse"

options = { redis: ENV["REDISSE_REDIS"] || "redis://127.0.0.1:6379/", seconds: 5.0 }
OptionParser.new do |o|
  o.banner = "usage: ruby -I lib bench/publisher.rb [--redis URL] [--seconds N]"
  o.on("--redis URL", String) { |v| options[:redis] = v }
  o.on("--seconds N", Float) { |v| options[:seconds] = v }
end.parse!(ARGV)
url = options[:redis]
unless url.match?(%r{\Aredis://(127\.\d+\.\d+\.\d+|localhost)(:\d+)?(/\d*)?\z})
  abort "bench/publisher.rb: --redis must point to a Redis server on this machine (127.0.0.0/8)"
end

# The 0.4 gem's publisher, as it was: one shared client, four round trips.
module OldRedisse
  LAST_EVENT_ID = "redisse:lastEventId"
  HISTORY_SIZE = 100

  def self.server_sent_event(data, type: nil, id: nil)
    data = String(data)
    str = +""
    str << "id: #{id}\n" if id
    str << "event: #{type}\n" if type
    str << "data: " + data.gsub("\n", "\ndata: ") + "\n"
    str << "\n"
  end

  def self.publish(redis, channel, message)
    type, data = message.to_h.first
    event_id = redis.incr(LAST_EVENT_ID)
    event = server_sent_event(data, type: type, id: event_id)
    redis.publish(channel, event)
    redis.zadd(channel, event_id, event)
    redis.zremrangebyrank(channel, 0, -1 - HISTORY_SIZE)
    event_id
  end
end

Redisse.redis_server = url
old_client = Redis.new(url: url)
CHANNEL = "bench:publisher"
MESSAGE = { notice: '{"id":42,"text":"a notification of a typical size"}' }.freeze

# Publishes from `threads` threads for `seconds`; returns publishes per second.
def measure(threads, seconds)
  yield # warm up: connections, script loading
  stop = Process.clock_gettime(Process::CLOCK_MONOTONIC) + seconds
  start = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  counts = Array.new(threads) do
    Thread.new do
      n = 0
      while Process.clock_gettime(Process::CLOCK_MONOTONIC) < stop
        yield
        n += 1
      end
      n
    end
  end.map(&:value)
  counts.sum / (Process.clock_gettime(Process::CLOCK_MONOTONIC) - start)
end

result = { seconds: options[:seconds], redis_rb: Redis::VERSION, ruby: RUBY_VERSION }
[1, 8].each do |threads|
  new_rate = measure(threads, options[:seconds]) { Redisse.publish(CHANNEL, MESSAGE) }
  old_rate = measure(threads, options[:seconds]) { OldRedisse.publish(old_client, CHANNEL, MESSAGE) }
  result[:"new_#{threads}"] = new_rate.round
  result[:"old_#{threads}"] = old_rate.round
  result[:"ratio_#{threads}"] = (new_rate / old_rate).round(2)
end
puts JSON.generate(result)
