defmodule MixExampleTest do
  use ExUnit.Case, async: true

  # The application (and its supervision tree, with the PyBridge serving)
  # was started by `mix test` before this module ran.

  test "the supervision tree is up, with the serving and the search" do
    assert Process.whereis(MixExample.Supervisor)
    assert Process.whereis(MixExample.Embeddings)
    assert Process.whereis(MixExample.Search)
  end

  test "a query about baking finds the baking sentences first" do
    [{s1, first}, {s2, second}, {s3, _third}] =
      MixExample.Search.top("How do I bake bread at home?", 3)

    baking = [
      "A simple recipe for homemade sourdough bread.",
      "Knead the dough for ten minutes, then let it rise overnight."
    ]

    assert Enum.sort([first, second]) == Enum.sort(baking)
    assert s1 >= s2 and s2 >= s3
  end

  test "scores are cosine similarities of unit vectors" do
    [query_embedding] = MixExample.Embeddings.embed(["space exploration"])
    norm = :math.sqrt(Enum.reduce(query_embedding, 0.0, &(&1 * &1 + &2)))
    assert_in_delta norm, 1.0, 1.0e-5

    for {score, _} <- MixExample.Search.top("space exploration", 20) do
      assert score <= 1.0 + 1.0e-6 and score >= -1.0 - 1.0e-6
    end
  end
end
