defmodule PyBridge.MixProject do
  use Mix.Project

  @version "0.1.0"

  def project do
    [
      app: :py_bridge,
      version: @version,
      elixir: "~> 1.14",
      elixirc_paths: elixirc_paths(Mix.env()),
      start_permanent: Mix.env() == :prod,
      deps: [],
      description: "Any Hugging Face model from Elixir, through Bumblebee's and Nx.Serving's API",
      docs: [main: "PyBridge"]
    ]
  end

  def application do
    [
      mod: {PyBridge.Application, []},
      extra_applications: [:logger]
    ]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
