defmodule MixExample.Search do
  @moduledoc """
  A small semantic search: embeds a corpus once at start-up, then ranks it
  against each query by cosine similarity (a dot product, since the
  embeddings are L2-normalized).
  """

  use GenServer

  @corpus [
    "A simple recipe for homemade sourdough bread.",
    "Knead the dough for ten minutes, then let it rise overnight.",
    "The central bank raised interest rates by a quarter point.",
    "Stock markets fell sharply after the inflation report.",
    "Our cat sleeps for most of the afternoon on the sofa.",
    "Dogs need a long walk every day to stay healthy.",
    "The team won the championship in the final minute.",
    "She ran the marathon in just under three hours.",
    "Elixir runs on the Erlang virtual machine.",
    "Supervisors restart processes that crash.",
    "Python is popular for machine learning research.",
    "Transformers turned natural language processing upside down.",
    "Water the tomato plants early in the morning.",
    "Roses need plenty of sun and well drained soil.",
    "The flight to Tokyo was delayed by two hours.",
    "Pack light when you travel by train across Europe.",
    "A warm bowl of soup is perfect on a rainy day.",
    "Fresh pasta only needs flour, eggs and a little patience.",
    "The telescope captured images of a distant galaxy.",
    "Astronauts spent six months aboard the space station."
  ]

  def start_link(opts), do: GenServer.start_link(__MODULE__, opts, name: __MODULE__)

  @doc "The corpus this search ranks."
  @spec corpus() :: [String.t()]
  def corpus, do: @corpus

  @doc """
  Returns the `k` corpus sentences closest to `query`, best first, as
  `{score, sentence}` tuples.
  """
  @spec top(String.t(), pos_integer()) :: [{float(), String.t()}]
  def top(query, k \\ 3) do
    # Embedding runs in the caller, batched with other callers by the serving;
    # only the ranking needs the index held by this process.
    query_embedding = MixExample.Embeddings.embed(query)
    GenServer.call(__MODULE__, {:rank, query_embedding, k})
  end

  @impl true
  def init(_opts) do
    {:ok, Enum.zip(@corpus, MixExample.Embeddings.embed(@corpus))}
  end

  @impl true
  def handle_call({:rank, query, k}, _from, index) do
    ranked =
      index
      |> Enum.map(fn {sentence, embedding} -> {dot(query, embedding), sentence} end)
      |> Enum.sort_by(&elem(&1, 0), :desc)
      |> Enum.take(k)

    {:reply, ranked, index}
  end

  defp dot(a, b), do: Enum.zip_reduce(a, b, 0.0, fn x, y, acc -> acc + x * y end)
end
