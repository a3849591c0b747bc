using System.IO.Compression;
using Quant.TestSupport;

namespace Quant.Build.Tests;

/// <summary>
/// Project "A" of the package-baseline tests: the cls model with <c>Pack="true"</c> and the fixture's checks,
/// built and <c>dotnet pack</c>ed once per test run as <see cref="Id"/> <see cref="Version"/> into a local folder
/// feed — the model "already shipped" that later builds compare with.
/// </summary>
public sealed class ShippedModel
{
    public const string Id = "Acme.ClsModel";
    public const string Version = "1.0.0";

    private static ShippedModel? _instance;
    private static readonly object Gate = new();

    public FixtureProject Project { get; }
    /// <summary>The folder feed holding the packed model package.</summary>
    public string Folder { get; }
    public string PackagePath => Path.Combine(Folder, $"{Id}.{Version}.nupkg");
    public BuildResult PackResult { get; }

    /// <summary>The one shipped model of this test run (the pack is the slow part: a full export and check).</summary>
    public static ShippedModel Of(PackageFeed feed)
    {
        lock (Gate) return _instance ??= new ShippedModel(feed);
    }

    private ShippedModel(PackageFeed feed)
    {
        Project = new FixtureProject(feed, "shipped", itemMetadata: "Pack=\"true\" ",
            properties: $"<PackageId>{Id}</PackageId><Version>{Version}</Version><Authors>Acme</Authors><Description>the cls model</Description>");
        Folder = TestAssets.TempDir("quant-models-feed");
        PackResult = Project.Pack(Folder);
        PackResult.AssertSucceeded();
    }

    /// <summary>The package's entries (zip paths).</summary>
    public static string[] Entries(string nupkg)
    {
        using var zip = ZipFile.OpenRead(nupkg);
        return zip.Entries.Select(e => e.FullName).Order(StringComparer.Ordinal).ToArray();
    }

    public static string Read(string nupkg, string entry)
    {
        using var zip = ZipFile.OpenRead(nupkg);
        using var reader = new StreamReader(zip.GetEntry(entry)!.Open());
        return reader.ReadToEnd();
    }
}
