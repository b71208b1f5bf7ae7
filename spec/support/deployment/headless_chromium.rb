# frozen_string_literal: true

require "fileutils"
require "tmpdir"
require "uri"

# Headless Chromium driven by selenium-webdriver, with a throwaway profile.
module Browser
  CHROMIUM = "/usr/bin/chromium"
  CHROMEDRIVER = "/usr/bin/chromedriver"

  module_function

  # Why browser specs cannot run here, or nil when they can.
  def unavailable_reason
    missing = [CHROMIUM, CHROMEDRIVER].reject { |path| File.executable?(path) }
    unless missing.empty?
      return "#{missing.join(' and ')} not installed (apt-get install chromium chromium-driver)"
    end

    require "selenium-webdriver"
    nil
  rescue LoadError
    "selenium-webdriver is not installed (apt-get install ruby-selenium-webdriver)"
  end

  # @return [Array(Selenium::WebDriver::Driver, String)] the driver and its
  #   profile directory, to delete after `driver.quit`
  def start
    require "selenium-webdriver"
    profile = Dir.mktmpdir("redisse-chromium")
    options = Selenium::WebDriver::Chrome::Options.new(binary: CHROMIUM)
    %W[
      --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run
      --disable-background-networking --disable-component-update --disable-sync
      --user-data-dir=#{profile}
    ].each { |argument| options.add_argument(argument) }
    service = Selenium::WebDriver::Chrome::Service.new(path: CHROMEDRIVER)
    [Selenium::WebDriver.for(:chrome, options: options, service: service), profile]
  rescue StandardError
    FileUtils.rm_rf(profile) if profile
    raise
  end
end

# Helpers of the specs that open the example's pages in Chromium, in a
# group that has a deployment (DeploymentHelpers' `with_deployment`).
module BrowserHelpers
  def self.included(group)
    group.extend(GroupMethods)
  end

  module GroupMethods
    # Chromium for the group's examples, as `driver`, or the group skipped
    # when it is not installed. After `with_deployment`, so that the browser
    # quits before the deployment stops (after hooks run in reverse order).
    def with_browser
      # Before the deployment is started for nothing.
      prepend_before(:context) do
        reason = Browser.unavailable_reason
        skip "browser specs need Chromium: #{reason}" if reason
      end
      before(:context) { @driver, @profile = Browser.start }
      after(:context) do
        @driver&.quit
        FileUtils.rm_rf(@profile) if @profile
      end

      let(:driver) { @driver }

      after do |example|
        warn "\n#{example.full_description} failed:\n#{deployment.log_tails}" if example.exception && deployment
        # Closes the pages' streams.
        close_other_tabs if driver
      end
    end
  end

  # Opens a page in a new session (no cookie) and waits until its stream is
  # open and delivered `count` events: the page at `path` through nginx,
  # unless a `url` is given. `open: false` waits only for its client.
  def open_page(path = "/", count: 0, url: deployment.url(path), open: true)
    driver.get(URI.join(url, "/subscriptions").to_s)
    driver.manage.delete_all_cookies
    driver.get(url)
    wait_for_page("the page's client has started") { driver.execute_script("return !!window.redisseStream") }
    return unless open

    wait_for_page("the page's stream is open and delivered #{count} event(s)") do
      client_state == "open" && page_events.size >= count
    end
  end

  # The events listed on the page, as [type, id, data].
  def page_events
    driver.execute_script(<<~JS)
      return Array.from(document.querySelectorAll("#events li.event"))
        .map(function (item) { return [item.dataset.type, item.dataset.id, item.dataset.data]; });
    JS
  end

  def page_text(id)
    driver.find_element(id: id).text
  end

  def wait_for_page(what, timeout: 10, &block)
    wait_until(what, timeout: timeout, interval: 0.05, detail: -> { "the page shows #{page_events.inspect}" }, &block)
  end

  # --- several tabs of one browser, one session ---------------------------

  # Opens `count` tabs on `url`, the first in the current one, all in the
  # session of the first visit (one cookie: the same channels, so the same
  # stream), and waits until each page's client has started. The block, if
  # any, runs in each tab before its page loads.
  # @return [Array<String>] the tabs' window handles
  def open_tabs(url, count)
    driver.get(URI.join(url, "/subscriptions").to_s)
    driver.manage.delete_all_cookies
    Array.new(count) do |index|
      driver.switch_to.new_window(:tab) unless index.zero?
      yield if block_given?
      driver.get(url)
      wait_for_page("the page's client has started") { driver.execute_script("return !!window.redisseStream") }
      driver.window_handle
    end
  end

  # Runs the block in the tab of `handle`, and returns what it returns.
  def in_tab(handle)
    driver.switch_to.window(handle)
    yield
  end

  # The block's answer in each tab, by handle.
  def in_each_tab(handles, &block)
    handles.to_h { |handle| [handle, in_tab(handle, &block)] }
  end

  # Leaves one blank tab: a new one, the others closed (a crashed tab too,
  # which takes no more commands).
  def close_other_tabs
    others = driver.window_handles
    driver.switch_to.new_window(:tab)
    blank = driver.window_handle
    others.each do |handle|
      driver.switch_to.window(handle)
      driver.close
    end
    driver.switch_to.window(blank)
  end

  # The page's client, as the example's pages expose it.
  def client_state
    driver.execute_script("return window.redisseStream.state")
  end

  def client_role
    driver.execute_script("return window.redisseStream.role")
  end

  # What the example's page logged (window.pageLog): states and roles with
  # the browser's Date.now(), renewal reasons.
  def page_log
    driver.execute_script("return window.pageLog")
  end

  # The ids of the events the page listed, of type `type`.
  def page_ids(type = "message")
    page_events.select { |event_type, _id, _data| event_type == type }.map { |_type, id, _data| Integer(id, 10) }
  end

  def wait_until_open(tabs, timeout: 10)
    wait_for_page("#{tabs.size} tab(s) are open", timeout: timeout) do
      in_each_tab(tabs) { client_state }.values.uniq == ["open"]
    end
  end

  # Waits until every tab listed `ids` last.
  def wait_for_ids(tabs, ids, timeout: 10)
    wait_until("every tab has the ids up to #{ids.last}", timeout: timeout, interval: 0.05,
                                                           detail: -> { in_each_tab(tabs) { page_ids }.inspect }) do
      in_each_tab(tabs) { page_ids.last(ids.size) }.values.all?(ids)
    end
  end

  # Now in milliseconds, as the browser's Date.now() counts them (the same
  # machine's clock).
  def now_ms
    (Time.now.to_f * 1000).round
  end

  def wait_for_data(data, timeout: 10)
    wait_for_page("the page shows an event with data #{data.inspect}", timeout: timeout) do
      page_events.find { |_type, _id, event_data| event_data == data }
    end
  end
end
