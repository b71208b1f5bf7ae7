# frozen_string_literal: true

require "fileutils"
require "tmpdir"

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
