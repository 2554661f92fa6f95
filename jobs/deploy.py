from nurture_lake.jobs.deploy import main

if __name__ == "__main__":
    main()
