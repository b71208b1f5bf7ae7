# frozen_string_literal: true

module Redisse
  # @!group The browser client

  # The redisse server's URL as browsers reach it, for pages that connect to
  # it directly with signed URLs (`redisse_stream_from` in Rails views).
  # Without it, or without a {#secret}, pages get their streams through the
  # application's redirect endpoint (nginx).
  #
  # @return [String, nil] defaults to `ENV['REDISSE_SERVER_URL']`
  def server_url
    instance_variable_defined?(:@server_url) ? @server_url : ENV["REDISSE_SERVER_URL"]
  end

  # @param url [String, nil]
  attr_writer :server_url

  # Whether pages connect to the server directly: a server URL and a secret
  # to sign the streams with.
  def direct_streams?
    !(server_url.nil? || server_url.to_s.empty?) && signed_streams?
  end

  # @!endgroup
end
