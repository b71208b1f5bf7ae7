# frozen_string_literal: true

require "json"
require "tmpdir"

# The client as the npm package `redisse`: `npm pack` of the repository,
# installed in a new project and imported by name, with node.
RSpec.describe "The npm package" do
  root = File.expand_path("../..", __dir__)
  client = File.join(root, "app", "javascript", "redisse.js")

  before do
    skip "npm is not installed" unless system("command -v npm >/dev/null")
  end

  it "is the gem's file, and node imports it by the package's name" do
    Dir.mktmpdir("redisse-npm") do |dir|
      output, status = run_command("npm", "pack", "--json", "--pack-destination", dir, chdir: root, timeout: 60)
      expect(status).to be_success, output
      packed = JSON.parse(output[/^\[.*\]/m]).first
      # npm adds the README and the licence of its own accord.
      expect(packed["files"].map { |file| file["path"] })
        .to contain_exactly("package.json", "app/javascript/redisse.js", "README.md", "LICENSE")

      project = File.join(dir, "project")
      Dir.mkdir(project)
      File.write(File.join(project, "package.json"), JSON.generate(name: "an-application", private: true))
      output, status = run_command("npm", "install", "--offline", "--no-audit", "--no-fund",
                                   File.join(dir, packed["filename"]), chdir: project, timeout: 60)
      expect(status).to be_success, output

      installed = File.join(project, "node_modules", "redisse", "app", "javascript", "redisse.js")
      expect(File.read(installed)).to eq File.read(client)
      script = 'import("redisse").then((m) => console.log(typeof m.connect, typeof m.RedisseStream))'
      output, status = run_command("node", "-e", script, chdir: project, timeout: 30)
      expect([output, status.success?]).to eq ["function function\n", true]
    end
  end
end
