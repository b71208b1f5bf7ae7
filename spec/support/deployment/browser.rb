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
        driver&.navigate&.to("about:blank") # closes the page's stream
      end
    end
  end

  # Opens a page in a new session (no cookie) and waits until its stream
  # delivered `count` events: the page at `path` through nginx, unless a
  # `url` is given.
  def open_page(path = "/", count: 1, url: deployment.url(path))
    driver.get(URI.join(url, "/subscriptions").to_s)
    driver.manage.delete_all_cookies
    driver.get(url)
    wait_for_page("the page receives #{count} event(s)") { page_events.size >= count }
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

  def wait_for_data(data, timeout: 10)
    wait_for_page("the page shows an event with data #{data.inspect}", timeout: timeout) do
      page_events.find { |_type, _id, event_data| event_data == data }
    end
  end
end
