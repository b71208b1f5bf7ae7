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
  spec.metadata = {
    "homepage_uri" => spec.homepage,
    "source_code_uri" => spec.homepage,
    "changelog_uri" => "#{spec.homepage}/blob/v#{spec.version}/CHANGELOG.md",
    "bug_tracker_uri" => "#{spec.homepage}/issues"
  }
  # Ruby 3.1 (Debian 12's) and 3.3 (Debian 13's) are the ones tested here.
  # 3.0 cannot work: magnus, the binding library, no longer compiles with it.
  # Newer Rubies install this source gem, which compiles for them; the
  # platform gem (rake gem:platform) narrows this to the ABIs it holds.
  spec.required_ruby_version = ">= 3.1"

  spec.files = Dir[
    "lib/**/*.rb",
    # The Rails engine's controller, and the browser client (also the npm
    # package, see package.json).
    "app/**/*.{rb,js}",
    "ext/redisse/**/*.{rs,rb,toml}",
    "src/**/*.rs",
    # A dev-dependency of the server crate: cargo reads its manifest to
    # resolve the workspace even when building the extension alone.
    "crates/**/*.{rs,toml}",
    "Cargo.toml",
    "Cargo.lock",
    "exe/redisse",
    "README.md",
    "CHANGELOG.md",
    "LICENSE"
  ]
  spec.bindir = "exe"
  spec.executables = ["redisse"]
  spec.require_paths = ["lib"]
  # Built with cargo by a hand-written Makefile, see extconf.rb.
  spec.extensions = ["ext/redisse/extconf.rb"]

  spec.add_dependency "rack", ">= 2.0"
end
