# frozen_string_literal: true

require_relative "../support/deployment/headless_chromium"
require_relative "../support/deployment/deployment_helpers"

# The browser client when its stream goes: gaps in the history, refusals.
RSpec.describe "The browser client recovering its stream" do
  include DeploymentHelpers
  include BrowserHelpers

  let(:publisher) { new_redisse(redis_server: deployment.redis_url) }

  describe "after the server restarts" do
    with_deployment(secret: "the deployment's secret")
    with_browser

    # The example's plain page and its Turbo page, in one session: they
    # share one stream.
    def open_plain_and_turbo_pages
      plain, turbo = open_tabs(deployment.app_url("/direct"), 2)
      in_tab(turbo) do
        driver.get(deployment.app_url("/turbo"))
        wait_for_page("the Turbo page's stream is open") do
          driver.execute_script("return document.getElementById('stream').getAttribute('state')") == "open"
        end
        # Gone if the page is loaded again, kept by Turbo's refresh.
        driver.execute_script("window.sameDocument = true")
      end
      [plain, turbo]
    end

    # Read in one script: Turbo may replace the element between two calls.
    def renders
      Integer(driver.execute_script("return document.getElementById('renders').textContent"), 10)
    end

    def restart_server_while(&block)
      deployment.stop_redisse
      block.call
      deployment.start_redisse
    end

    it "reports a gap when the history no longer reaches back, and the Turbo page refreshes" do
      plain, turbo = open_plain_and_turbo_pages
      before = publisher.publish("global", "before")
      wait_for_ids([plain], [before])
      rendered = in_tab(turbo) { renders }

      restart_server_while do
        in_tab(plain) { wait_for_page("the page notices") { client_state != "open" } }
        deployment.redis.client.then do |client|
          client.del("global")
          client.close
        end
        @after = publisher.publish("global", "after the flush")
      end

      in_tab(plain) do
        wait_for_data("after the flush", timeout: 20)
        expect(page_events.map { |type, id, _data| [type, id] }).to eq [["message", before.to_s], ["gap", ""], ["message", @after.to_s]]
      end
      in_tab(turbo) do
        wait_for_page("the Turbo page is rendered again") { renders > rendered }
        expect(driver.execute_script("return window.sameDocument")).to be true
      end
    end

    it "replays what it missed, and reports no gap, when the history reaches back" do
      plain, = open_plain_and_turbo_pages
      before = publisher.publish("global", "before")
      wait_for_ids([plain], [before])

      missed = nil
      restart_server_while do
        in_tab(plain) { wait_for_page("the page notices") { client_state != "open" } }
        missed = Array.new(2) { |index| publisher.publish("global", "missed #{index}") }
      end

      in_tab(plain) do
        wait_for_ids([plain], [before, *missed], timeout: 20)
        expect(page_events.map(&:first).uniq).to eq ["message"]
      end
    end

    it "asks its function for a new URL once after a 403, then reports the failure" do
      # Signed with another secret than the server's.
      refused = new_redisse(secret: "another secret").stream_url(deployment.redisse_url, ["global"])
      open_tabs(deployment.app_url("/direct?share=0"), 1)

      result = driver.execute_async_script(<<~JS, refused)
        const [url, done] = arguments
        import("/assets/redisse.js").then(({ connect }) => {
          let calls = 0
          const stream = connect(() => { calls += 1; return url }, { share: false })
          stream.addEventListener("statechange", ({ detail }) => {
            if (detail.state === "closed") done({ calls, failure: detail.failure })
          })
        })
      JS

      expect(result).to eq("calls" => 2, "failure" => { "status" => 403, "reason" => "bad signature" })
    end
  end

  describe "refused by a full server" do
    # One stream at most: the spec holds it.
    with_deployment(server_args: ["--max-streams", "1"])
    with_browser

    it "retries after the answer's Retry-After, where an EventSource gives up" do
      holder = open_stream(deployment.redisse, "/?global")
      expect(holder.status).to eq 200
      open_tabs(deployment.url("/"), 1)
      driver.execute_script(<<~JS)
        window.control = new EventSource("/events")
      JS

      retried = wait_for_page("the client is refused") do
        page_log["retries"].find { |_delay, status, _at| status == 503 }
      end
      wait_for_page("the EventSource is refused") { driver.execute_script("return window.control.readyState") == 2 }
      delay, _status, refused_at = retried
      # The server's Retry-After is 5 s.
      expect(delay).to be >= 5000

      holder.close
      wait_until("the server is free", timeout: 5) { deployment.redisse.stats.fetch("connected").zero? }
      wait_for_page("the client's stream opens", timeout: 20) { client_state == "open" }
      opened_at = page_log["states"].reverse.find { |state, _at| state == "open" }.last
      expect(opened_at - refused_at).to be >= 5000

      # EventSource.CLOSED: it never tries again.
      expect(driver.execute_script("return window.control.readyState")).to eq 2
      expect(deployment.redisse.stats.fetch("connected")).to eq 1
    end
  end
end
