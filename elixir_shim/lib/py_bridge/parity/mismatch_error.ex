defmodule PyBridge.Parity.MismatchError do
  @moduledoc """
  Raised by `PyBridge.Parity.assert_parity/4` when ExUnit is not loaded
  (under ExUnit it raises `ExUnit.AssertionError`). `:report` holds the
  `PyBridge.Parity.Report`.
  """

  defexception [:report]

  @impl true
  def message(%__MODULE__{report: report}), do: PyBridge.Parity.Report.format(report)
end
