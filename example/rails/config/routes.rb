# frozen_string_literal: true

Rails.application.routes.draw do
  root "events#index"
  # GET /events answers with an X-Accel-Redirect that nginx serves from the
  # redisse server (see ../nginx.conf); GET /events/url, with signed URLs
  # on the server for the client to renew its stream with.
  mount Redisse::Engine => "/events"
  post "/publish" => "events#publish"
  resources :messages, only: %i[index create]
end
