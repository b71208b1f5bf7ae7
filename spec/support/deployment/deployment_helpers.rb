# frozen_string_literal: true

require "net/http"
require "uri"
require_relative "deployment"

# Helpers of the deployment specs. Streams through nginx are SseReaders
# (`open_stream(deployment, path)`); pages and forms are plain Net::HTTP
# requests, as curl would send them.
module DeploymentHelpers
  def self.included(group)
    group.extend(GroupMethods)
  end

  module GroupMethods
    # One deployment for the group's examples, as `deployment`.
    # @param type Deployment, or RailsDeployment
    # @param options see its `new`
    def with_deployment(type: Deployment, **options)
      before(:context) do
        @deployment = type.new(**options).start
        # With an event counter in Redis, every stream starts with a
        # `lastEventId` event: the sign that it is subscribed.
        new_redisse(redis_server: @deployment.redis.url).publish("warm-up", "")
      end

      after(:context) do
        @deployment&.stop
        @deployment&.cleanup
      end

      let(:deployment) { @deployment }
    end
  end

  # A browser-like session of the example app through nginx: its cookie and
  # its private channel, from a first visit.
  CookieSession = Struct.new(:cookie, :private_channel)

  def new_cookie_session(deployment)
    response = Net::HTTP.get_response(URI(deployment.url("/")))
    expect(response.code).to eq "200"
    CookieSession.new(response["Set-Cookie"][/\A[^;]+/], response.body[%r{id="private-channel">([^<]+)<}, 1])
  end

  # A session with another private channel than `channel` (a new session
  # gets one of four at random).
  def cookie_session_other_than(deployment, channel)
    wait_until("a session gets another private channel than #{channel}") do
      session = new_cookie_session(deployment)
      session if session.private_channel != channel
    end
  end

  # Waits until a stream through nginx is subscribed (see with_deployment).
  def wait_until_subscribed(stream)
    stream.wait_for("the stream to be subscribed") { stream.events.any? { |event| event.type == "lastEventId" } }
  end
end
