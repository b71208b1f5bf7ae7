# frozen_string_literal: true

# The routes of Redisse::Engine, under its mount point (/events). (Named
# routes.rb, as an engine's routes are in Rails.)
Redisse::Engine.routes.draw do
  get "/" => "streams#redirect", as: :stream
  get "/url" => "streams#url", as: :stream_url
end
