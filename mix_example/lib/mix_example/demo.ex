defmodule MixExample.Demo do
  @moduledoc """
  `make demo`: a few queries against the corpus, top 3 hits printed as a table.
  """

  @queries [
    "How do I bake bread at home?",
    "What happened in the financial markets?",
    "Tell me about pets",
    "space exploration"
  ]

  def main do
    IO.puts(
      "Semantic search over #{length(MixExample.Search.corpus())} sentences with all-MiniLM-L6-v2\n"
    )

    for query <- @queries do
      IO.puts("Query: #{query}")
      IO.puts("  score   sentence")

      for {score, sentence} <- MixExample.Search.top(query, 3) do
        IO.puts("  #{:erlang.float_to_binary(score, decimals: 4)}  #{sentence}")
      end

      IO.puts("")
    end
  end
end
