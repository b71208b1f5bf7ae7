# frozen_string_literal: true

require_relative "lib/redisse/version"

Gem::Specification.new do |spec|
  spec.name = "redisse"
  spec.version = Redisse::VERSION
  spec.summary = "Server-Sent Events published from Ruby and served through Redis"
  spec.description = "Publish Server-Sent Events from a Ruby application and serve them " \
                     "to clients with a Redis-backed server. A drop-in replacement for redisse 0.4, " \
                     "with the server and the publisher written in Rust."
  spec.license = "MIT"
  spec.authors = ["Redisse contributors"]
  spec.homepage = "https://github.com/tigerlily/redisse"
  spec.required_ruby_version = ">= 3.0"

  spec.files = Dir[
    "lib/**/*.rb",
    "ext/redisse/**/*.{rs,rb,toml}",
    "src/**/*.rs",
    "Cargo.toml",
    "Cargo.lock",
    "exe/redisse",
    "README.md"
  ]
  spec.bindir = "exe"
  spec.executables = ["redisse"]
  spec.require_paths = ["lib"]
  # Built with cargo by a hand-written Makefile, see extconf.rb.
  spec.extensions = ["ext/redisse/extconf.rb"]

  spec.add_dependency "rack", ">= 2.0"
end
